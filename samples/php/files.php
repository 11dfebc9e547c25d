<?php
// A file-heavy page, like a framework's front controller: per request it
// checks 300 paths (an autoloader probing five missing places before it
// finds each of 50 parts: 250 missing, 50 found), reads the 50 small JSON
// files under files/ next to it, and renders a page from them, a few ms of
// PHP in all. Every path it touches is under files/; it creates nothing.
// ?rounds=N repeats the rendering (default 8) to make the page slower.
// The length lets an HTTP/1.0 client (ab -k) keep its connection.
$dir = __DIR__ . '/files';
$probes = ['vendor/a', 'vendor/b', 'lib', 'src', 'app'];
$rounds = max(0, min(100, (int)($_GET['rounds'] ?? 8)));
$checked = 0;
$parts = [];
for ($i = 0; $i < 50; $i++) {
    $name = sprintf('part-%02d.json', $i);
    foreach ($probes as $p) {
        ++$checked;
        if (is_file("$dir/$p/$name")) {
            break;
        }
    }
    ++$checked;
    $path = "$dir/$name";
    $text = is_file($path) ? file_get_contents($path) : false;
    $part = $text === false ? null : json_decode($text, true);
    if (!is_array($part)) {
        http_response_code(500);
        $body = "cannot read $path\n";
        header("Content-Length: " . strlen($body));
        echo $body;
        exit;
    }
    $parts[] = $part;
}

$html = '';
$total = 0.0;
for ($r = 0; $r < $rounds; $r++) {
    $html = "<html><body>\n";
    foreach ($parts as $part) {
        $items = $part['items'];
        usort($items, fn($a, $b) => $a['price'] <=> $b['price'] ?: strcmp($a['name'], $b['name']));
        $html .= sprintf("<h2 id=\"s%d\">%s</h2>\n<ul>\n", $part['id'],
                         htmlspecialchars($part['title']));
        foreach ($items as $item) {
            $html .= sprintf("<li>%s %.2f [%s]</li>\n", htmlspecialchars(ucfirst($item['name'])),
                             $item['price'], htmlspecialchars(implode(', ', $item['tags'])));
            $total += $item['price'];
        }
        $html .= "</ul>\n";
    }
}
$html .= sprintf("<p>%d parts, %d paths checked, sum %.2f, digest %s</p>\n</body></html>\n",
                 count($parts), $checked, $total, md5($html));
header("Content-Length: " . strlen($html));
echo $html;
