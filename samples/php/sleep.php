<?php
// Sleeps ?us= microseconds (default 20000), then says how long it slept.
$us = (int)($_GET['us'] ?? 20000);
usleep($us);
echo "slept ", $us, " us\n";
