<?php
// Sleeps ?us= microseconds (default 0), then answers ?n= bytes (default
// 100000, at most 16 MiB) of body: a reply of a known size, to time a link
// of a known rate. Content-Length lets an HTTP/1.0 client keep its
// connection.
$us = max(0, (int)($_GET['us'] ?? 0));
$n = max(0, min(16 << 20, (int)($_GET['n'] ?? 100000)));
if ($us > 0) {
    usleep($us);
}
header("Content-Length: " . $n);
echo str_repeat("x", $n);
