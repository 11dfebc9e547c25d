<?php
// A page that calls another traced HTTP service, for the nested-request
// test: ?url=URL is fetched ?n= times (default 2) with one curl handle, so
// the first fetch opens the connection and the others reuse it. Each
// curl_exec is timed with hrtime() around it. One JSON line per request
// goes to ?log=FILE: per fetch, in order, [hrtime ns around curl_exec,
// curl's pre-transfer time in us, curl's total time in us].
$c = curl_init($_GET['url']);
curl_setopt($c, CURLOPT_RETURNTRANSFER, true);
$n = (int)($_GET['n'] ?? 2);
$ns = [];
for ($i = 0; $i < $n; $i++) {
  $s = hrtime(true);
  curl_exec($c);
  $d = hrtime(true) - $s;
  // curl's own clock (us): from the start to just before the transfer
  // began, and to its end.
  $ns[] = [$d, curl_getinfo($c, CURLINFO_PRETRANSFER_TIME_T),
           curl_getinfo($c, CURLINFO_TOTAL_TIME_T)];
}
// The handle's connection closes here, before the reply (curl_close alone
// does nothing since PHP 8).
unset($c);
if (isset($_GET['log'])) {
  file_put_contents($_GET['log'], json_encode($ns) . "\n", FILE_APPEND | LOCK_EX);
}
$body = "ok\n";
header("Content-Length: " . strlen($body));
echo $body;
