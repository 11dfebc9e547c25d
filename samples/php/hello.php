<?php
// The lighttpd post's script. The length lets an HTTP/1.0 client (ab -k)
// keep its connection: without it nginx must close after every reply.
header("Content-Length: 3");
echo "123";
