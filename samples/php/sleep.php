<?php
// Sleeps ?us= microseconds (default 20000), then says how long it slept.
// The length lets an HTTP/1.0 client (ab -k) keep its connection.
$us = (int)($_GET['us'] ?? 20000);
usleep($us);
$body = "slept " . $us . " us\n";
header("Content-Length: " . strlen($body));
echo $body;
