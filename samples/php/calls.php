<?php
// A page that calls other services, for the backend-call tests: ?redis=PORT
// makes ?rn= Redis GETs after connecting, ?my=SOCKET or ?my=HOST:PORT runs
// ?mq= `SELECT SLEEP(?ms=/1000)` on MariaDB, ?http=URL fetches it ?hn= times
// with curl (a new connection each time), then ?us= microseconds of sleep.
// Each step is timed with hrtime() around it. One JSON line per request goes
// to ?log=FILE: per peer, the calls made and their summed time in ns, kept
// apart for opening the connection ("open": the connect is a call of its
// own, and MariaDB's login one more) and for the rest ("calls"). A curl
// fetch is two calls (its connect and its request) and its time includes
// curl's own setup: only an upper bound.
$t = [];
function timed(&$acc, $calls, $fn) {
  $s = hrtime(true);
  $r = $fn();
  $acc[1] += hrtime(true) - $s;
  $acc[0] += $calls;
  return $r;
}
function kind(&$t, $name) {
  $t[$name] = ['open' => [0, 0], 'calls' => [0, 0]];
}
if (isset($_GET['redis'])) {
  kind($t, 'redis');
  $r = new Redis();
  timed($t['redis']['open'], 1, function () use ($r) {
    return $r->connect('127.0.0.1', (int)$_GET['redis']);
  });
  $n = (int)($_GET['rn'] ?? 20);
  // Timed inline: a closure call per GET would be page time, not the call's.
  $keys = [];
  for ($i = 0; $i < $n; $i++) $keys[] = "k$i";
  $ns = 0;
  foreach ($keys as $k) {
    $s = hrtime(true);
    $r->get($k);
    $ns += hrtime(true) - $s;
  }
  $t['redis']['calls'] = [$n, $ns];
  $r->close();  // phpredis sends nothing on close
}
if (isset($_GET['my'])) {
  kind($t, 'mysql');
  $my = $_GET['my'];
  $db = timed($t['mysql']['open'], 2, function () use ($my) {
    if ($my[0] === '/') return new mysqli('localhost', 'root', '', '', 0, $my);
    [$host, $port] = explode(':', $my);
    return new mysqli($host, 'root', '', '', (int)$port);
  });
  $q = (int)($_GET['mq'] ?? 2);
  $ms = (int)($_GET['ms'] ?? 4);
  for ($i = 0; $i < $q; $i++) {
    timed($t['mysql']['calls'], 1, function () use ($db, $ms) {
      return $db->query('SELECT SLEEP(' . ($ms / 1000) . ')')->fetch_all();
    });
  }
  // COM_QUIT: a call without a reply.
  timed($t['mysql']['calls'], 1, function () use ($db) { return $db->close(); });
}
if (isset($_GET['http'])) {
  kind($t, 'http');
  $n = (int)($_GET['hn'] ?? 1);
  for ($i = 0; $i < $n; $i++) {
    timed($t['http']['open'], 2, function () {
      $c = curl_init($_GET['http']);
      curl_setopt($c, CURLOPT_RETURNTRANSFER, true);
      $body = curl_exec($c);
      curl_close($c);
      return $body;
    });
  }
}
usleep((int)($_GET['us'] ?? 0));
if (isset($_GET['log'])) {
  file_put_contents($_GET['log'], json_encode($t) . "\n", FILE_APPEND | LOCK_EX);
}
$body = "ok\n";
header("Content-Length: " . strlen($body));
echo $body;
