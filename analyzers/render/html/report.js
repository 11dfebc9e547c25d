(function () {
  'use strict';
  var SVGNS = 'http://www.w3.org/2000/svg';
  var LANES = ['server', 'transport', 'backend'];
  var PHASES = ['total', 'server', 'transport', 'backend', 'queue', 'tls'];
  var draws = [];  // chart redraws, run again when the window is resized
  var uid = 0;

  function set(e, attrs) {
    for (var k in attrs) {
      if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    }
    return e;
  }
  function h(tag, attrs, parent, text) {
    var e = set(document.createElement(tag), attrs || {});
    if (text !== undefined && text !== null) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function s(tag, attrs, parent, text) {
    var e = set(document.createElementNS(SVGNS, tag), attrs || {});
    if (text !== undefined && text !== null) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  // Durations as the text output prints them (analyzers/format.cc).
  function fmt(us) {
    if (us === null || us === undefined) return '-';
    if (us < 1000) return us.toFixed(1) + ' us';
    if (us < 1e6) return (us / 1e3).toFixed(3) + ' ms';
    return (us / 1e6).toFixed(3) + ' s';
  }
  function signed(us) {
    if (us === null || us === undefined) return '-';
    return (us < 0 ? '-' : '+') + fmt(Math.abs(us));
  }
  function laneOf(side, peer) {
    if (side === 'backend') return 'backend';
    return peer === 'backend' ? 'transport' : 'server';
  }
  // Peer colours: none of the phase colours, so a call never reads as a
  // phase. The report's peers take them in its order (most time first),
  // others in order of first sight; past the palette they repeat.
  var PEER_COLOURS = ['#76b7b2', '#b07aa1', '#edc948', '#9c755f', '#ff9da7',
    '#17becf', '#8c564b', '#bcbd22', '#7f7f7f', '#1f3a93'];
  var peerColour = {}, peerCount = 0;
  function colourOf(peer) {
    if (!(peer in peerColour)) {
      peerColour[peer] = PEER_COLOURS[peerCount++ % PEER_COLOURS.length];
    }
    return peerColour[peer];
  }
  function callText(c) {
    return c.peer + (c.protocol ? ' (' + c.protocol + ')' : '') +
      (c.query !== null && c.query !== undefined ? ': ' + c.query : '') +
      (c.opens ? ' [opens its connection]' : '') + (c.reply ? '' : ' [no reply]');
  }
  function niceStep(span) {
    if (!(span > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(span)));
    var m = span / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function widthOf(box) { return Math.max(260, box.clientWidth || 720); }
  function chart(parent, caption, draw) {
    var fig = h('figure', { 'class': 'chart' }, parent);
    var box = h('div', { 'class': 'chart-box' }, fig);
    if (caption) h('figcaption', null, fig, caption);
    draws.push(function () { box.textContent = ''; draw(box, widthOf(box)); });
    return fig;
  }
  function svgRoot(box, cls, w, ht, title, desc, extra) {
    var id = 'c' + (++uid);
    var svg = s('svg', { 'class': cls, width: w, height: ht,
      viewBox: '0 0 ' + w + ' ' + ht, role: 'img',
      'aria-labelledby': id + 't ' + id + 'd' }, box);
    if (extra) set(svg, extra);
    s('title', { id: id + 't' }, svg, title);
    s('desc', { id: id + 'd' }, svg, desc);
    return svg;
  }
  function table(parent, summary, head, rows, cls) {
    var det = h('details', null, parent);
    h('summary', null, det, summary);
    var wrap = h('div', { 'class': 'table-wrap' }, det);
    var t = h('table', { 'class': cls || null }, wrap);
    var tr = h('tr', null, h('thead', null, t));
    head.forEach(function (c) { h('th', { scope: 'col' }, tr, c); });
    var body = h('tbody', null, t);
    rows.forEach(function (r) {
      var row = h('tr', null, body);
      r.forEach(function (c) { h('td', null, row, c); });
    });
    return t;
  }
  function key(parent, items) {
    var k = h('p', { 'class': 'key note' }, parent);
    items.forEach(function (it) {
      var sp = h('span', null, k);
      h('i', { style: 'background:' + it[1] }, sp);
      sp.appendChild(document.createTextNode(it[0]));
    });
  }

  // Vertical grid lines at `ticks` (us) with their times above them.
  function axis(svg, ticks, x, top, ht) {
    var g = s('g', { 'class': 'axis' }, svg);
    ticks.forEach(function (t) {
      s('line', { x1: x(t), x2: x(t), y1: top - 4, y2: ht }, g);
      s('text', { x: x(t), y: top - 7, 'text-anchor': 'middle' }, g,
        fmt(t).replace('.000 ', ' ').replace('.0 us', ' us'));
    });
  }

  // ---- waterfall: lanes of phase bands, then one row per syscall ----
  function drawWaterfall(box, w, spec) {
    var narrow = w < 560;
    var labelW = narrow ? Math.round(w * 0.36) : 230;
    var valueW = narrow ? 58 : 150;
    var plotW = Math.max(60, w - labelW - valueW - 8);
    var laneH = 18, rowH = 16, top = 22;
    var rowsTop = top + LANES.length * laneH + 8;
    var ht = rowsTop + spec.rows.length * rowH + 6;
    // The axis spans the request (and its bands); a row that starts later
    // (a keep-alive connection's close, averaged over the few requests that
    // had one) is drawn at the right edge and its start is written out.
    var maxUs = spec.total || 0;
    spec.bands.forEach(function (b) {
      maxUs = Math.max(maxUs, (b.start || 0) + (b.dur || 0));
    });
    if (!(maxUs > 0)) maxUs = 1;
    function x(us) { return labelW + Math.max(0, Math.min(us, maxUs)) / maxUs * plotW; }
    var svg = svgRoot(box, 'waterfall', w, ht, spec.title, spec.desc,
                      { 'data-request': spec.id });
    var step = niceStep(maxUs / (narrow ? 3 : 6)), ticks = [];
    for (var t = 0; t <= maxUs + 1e-9; t += step) ticks.push(t);
    axis(svg, ticks, x, top, ht);
    LANES.forEach(function (lane, i) {
      var y = top + i * laneH;
      s('text', { 'class': 'lane-label', x: 4, y: y + 13 }, svg, lane);
      spec.bands.forEach(function (b) {
        if (b.lane !== lane || b.dur === null || b.dur === undefined) return;
        var r = s('rect', { 'class': 'band ' + (b.cls === 'queue' ? 'queue' : 'lane-' + lane),
          'data-phase': b.cls, 'data-us': b.dur, 'data-start-us': b.start,
          x: x(b.start), y: y + 2, width: Math.max(1, x(b.start + b.dur) - x(b.start)),
          height: laneH - 4 }, svg);
        s('title', null, r, b.cls + ': ' + fmt(b.dur) + ' from ' + fmt(b.start) +
          (b.cls === 'backend' && spec.own !== null && spec.own !== undefined
            ? ', own ' + fmt(spec.own) : ''));
        if (b.cls === 'queue' && x(b.start + b.dur) - x(b.start) > 34) {
          s('text', { x: x(b.start) + 3, y: y + 13, 'class': 'value' }, svg, 'queue');
        }
      });
      if (lane === 'backend') drawCalls(svg, spec, x, y, laneH, labelW + plotW + 6, narrow);
    });
    spec.rows.forEach(function (r, j) {
      var y = rowsTop + j * rowH;
      s('text', { 'class': 'label', x: 4, y: y + 12 }, svg,
        narrow ? r.short : r.label);
      var timed = r.dur !== null && r.dur !== undefined;
      var bx = x(r.start), bw = timed ? Math.max(2, x(r.start + r.dur) - bx) : 2;
      var bar = s('rect', { 'class': 'bar ' + r.kind + ' lane-' + r.lane + (timed ? '' : ' untimed'),
        'data-name': r.name, 'data-side': r.side, 'data-peer': r.peer,
        'data-lane': r.lane, 'data-us': timed ? r.dur : null,
        'data-start-us': r.start, x: bx, y: y + 3, width: bw, height: rowH - 5 }, svg);
      s('title', null, bar, r.label + ': ' + r.value + ', from ' + fmt(r.start));
      var beyond = r.start + (timed ? r.dur : 0) > maxUs * 1.001;
      if (beyond) set(bar, { 'class': bar.getAttribute('class') + ' beyond' });
      s('text', { 'class': 'value', x: labelW + plotW + 6, y: y + 12 }, svg,
        (narrow ? r.shortValue : r.value) + (beyond ? ' @' + fmt(r.start) : ''));
    });
  }
  // The request's backend calls as bars inside its backend lane, each at
  // its start and end, in its peer's colour; the backend's own time (backend
  // minus the union of the calls) written at the lane's end.
  function drawCalls(svg, spec, x, y, laneH, valueX, narrow) {
    (spec.calls || []).forEach(function (c) {
      var bx = x(c.start), bw = Math.max(1, x(c.start + c.dur) - bx);
      var r = s('rect', { 'class': 'call', 'data-peer': c.peer,
        'data-protocol': c.protocol, 'data-us': c.dur, 'data-start-us': c.start,
        'data-end-us': c.start + c.dur, fill: colourOf(c.peer),
        x: bx, y: y + 4, width: bw, height: laneH - 8 }, svg);
      s('title', null, r, callText(c) + ': ' + fmt(c.dur) + ' from ' + fmt(c.start));
    });
    if (spec.own !== null && spec.own !== undefined) {
      s('text', { 'class': 'value own', 'data-own-us': spec.own, x: valueX, y: y + 13 },
        svg, 'own ' + fmt(spec.own) + (narrow ? '' : ', ' + spec.calls.length + ' calls'));
    }
  }
  function waterfall(parent, spec) {
    chart(parent, spec.caption, function (box, w) { drawWaterfall(box, w, spec); });
    table(parent, 'Table: ' + spec.title,
      ['lane', 'call', 'start', 'duration', 'detail'],
      spec.bands.filter(function (b) { return b.dur !== null && b.dur !== undefined; })
        .map(function (b) { return [b.lane, '(' + b.cls + ')', fmt(b.start), fmt(b.dur), ''];
        }).concat(spec.rows.map(function (r) {
          return [r.lane, r.label, fmt(r.start), r.dur === null ? '-' : fmt(r.dur), r.value];
        })).concat((spec.calls || []).map(function (c) {
          return ['backend', 'call \u2192 ' + c.peer, fmt(c.start), fmt(c.dur),
                  (c.protocol || '') + (c.query !== null && c.query !== undefined
                    ? ' ' + c.query : '')];
        })), 'waterfall-table');
  }
  function rowLabel(side, name, peer) {
    return side + ' ' + name + (peer ? ' \u2192 ' + peer : '');
  }
  function averageSpec(rep, id, who) {
    var tl = rep.timeline || { exchange: null, lines: [] };
    var total = rep.phases.total.mean_us;
    var span = tl.span_us !== undefined && tl.span_us !== null ? tl.span_us : total;
    var spec = { id: id, total: span, bands: [], rows: [] };
    if (span !== null) spec.bands.push({ lane: 'server', cls: 'server', start: 0, dur: span });
    var ex = tl.exchange;
    if (ex && ex.calls_per_request > 0) {
      spec.bands.push({ lane: 'transport', cls: 'transport', start: ex.offset_us,
                        dur: ex.us_per_request / ex.calls_per_request });
    }
    var connectEnd = null, calls = 0;
    tl.lines.forEach(function (l) {
      if (l.name === '(work)') {
        var per = l.calls_per_request > 0 ? l.us_per_request / l.calls_per_request : 0;
        spec.bands.push({ lane: 'backend', cls: 'backend', start: l.offset_us, dur: per });
        spec.rows.push({ kind: 'work', lane: 'backend', name: l.name, side: l.side,
          peer: null, label: 'backend (work)', short: 'backend (work)',
          start: l.offset_us, dur: l.us_per_request, shortValue: fmt(l.us_per_request),
          value: fmt(l.us_per_request) + ' \u00d7' + l.calls_per_request.toFixed(2) });
        return;
      }
      ++calls;
      if (l.name === 'connect' && l.side === 'server' && l.peer === 'backend' &&
          l.timed && l.calls_per_request > 0) {
        connectEnd = l.offset_us + l.us_per_request / l.calls_per_request;
      }
      spec.rows.push({ kind: 'syscall', lane: laneOf(l.side, l.peer), name: l.name,
        side: l.side, peer: l.peer, label: rowLabel(l.side, l.name, l.peer),
        short: l.side.charAt(0) + ' ' + l.name, start: l.offset_us,
        dur: l.timed ? l.us_per_request : null,
        shortValue: l.timed ? fmt(l.us_per_request) : '\u00d7' + l.calls_per_request.toFixed(2),
        value: (l.timed ? fmt(l.us_per_request) : '-') + ' \u00d7' +
               l.calls_per_request.toFixed(2) });
    });
    var q = rep.phases.queue;
    if (q.mean_us !== null && connectEnd !== null) {
      spec.bands.push({ lane: 'transport', cls: 'queue', start: connectEnd, dur: q.mean_us });
    }
    spec.title = 'The average request' + (who ? ' of ' + who : '') + ': ' + calls +
      ' syscall lines on a time axis';
    spec.desc = 'Mean total ' + fmt(total) + ' = server ' + fmt(rep.phases.server.mean_us) +
      ' + transport ' + fmt(rep.phases.transport.mean_us) + ' + backend ' +
      fmt(rep.phases.backend.mean_us) + (q.mean_us !== null ? '; queue ' + fmt(q.mean_us) : '') +
      '. Each row is one syscall kind on one side and connection, at its mean start; ' +
      'its bar is its time per request.';
    spec.caption = 'Over ' + rep.requests.complete + ' complete requests. Bars start at ' +
      'the mean start of each kind of call and last its time per request (\u00d7 calls per ' +
      'request); a call seen only at its end (the default for reads and writes) is a tick. ' +
      'Lanes: the request from its start to its end on the wall clock (server; longer ' +
      'than the total when it waited for the client), the backend exchange (transport; ' +
      'queue hatched) and the backend\u2019s own time.';
    return spec;
  }
  function requestSpec(q, id) {
    var span = q.span_us !== undefined && q.span_us !== null ? q.span_us : q.total_us;
    var spec = { id: id, total: span, bands: [], rows: [] };
    spec.bands.push({ lane: 'server', cls: 'server', start: 0, dur: span });
    if (q.exchange_offset_us !== null && q.exchange_us !== null) {
      spec.bands.push({ lane: 'transport', cls: 'transport', start: q.exchange_offset_us,
                        dur: q.exchange_us });
    }
    if (q.backend_offset_us !== null && q.backend_us !== null && q.backend_timing !== 'none') {
      spec.bands.push({ lane: 'backend', cls: 'backend', start: q.backend_offset_us,
                        dur: q.backend_us });
    }
    var connectEnd = null;
    q.syscalls.forEach(function (c) {
      if (c.name === 'connect' && c.side === 'server' && c.peer === 'backend' &&
          c.dur_us !== null) {
        connectEnd = c.offset_us + c.dur_us;
      }
      var detail = c.dur_us === null ? '-' : fmt(c.dur_us);
      if (c.bytes !== null) detail += ' ' + c.bytes + ' B';
      spec.rows.push({ kind: 'syscall', lane: laneOf(c.side, c.peer), name: c.name,
        side: c.side, peer: c.peer, label: rowLabel(c.side, c.name, c.peer),
        short: c.side.charAt(0) + ' ' + c.name, start: c.offset_us, dur: c.dur_us,
        shortValue: c.dur_us === null ? '-' : fmt(c.dur_us), value: detail });
    });
    if (q.queue_us !== null && connectEnd !== null) {
      spec.bands.push({ lane: 'transport', cls: 'queue', start: connectEnd, dur: q.queue_us });
    }
    spec.calls = (q.calls || []).map(function (c) {
      return { peer: c.peer, protocol: c.protocol, query: c.query, opens: c.opens,
               reply: c.reply, start: c.offset_us, dur: c.dur_us };
    });
    spec.own = q.calls && q.calls.length > 0 ? q.backend_own_us : null;
    spec.title = 'Request #' + q.id + ': ' + q.syscalls.length + ' syscalls' +
      (spec.calls.length ? ' and ' + spec.calls.length + ' backend calls' : '') +
      ' on a time axis';
    spec.desc = 'Total ' + fmt(q.total_us) + ' = server ' + fmt(q.server_us) +
      ' + transport ' + fmt(q.transport_us) + ' + backend ' + fmt(q.backend_us) +
      (q.queue_us !== null ? '; queue ' + fmt(q.queue_us) : '') + '.' +
      (spec.own !== null && spec.own !== undefined ? ' Backend own ' + fmt(spec.own) +
        '; calls: ' + (q.peers || []).map(function (p) {
          return p.peer + ' ' + fmt(p.us) + ' (' + p.calls + ')';
        }).join(', ') + '.' : '');
    return spec;
  }

  // ---- phases: the mean split, the table, the percentiles ----
  function phaseRows(phases) {
    return PHASES.filter(function (p) {
      return phases[p] && (p !== 'tls' || phases.tls.count > 0);
    });
  }
  function phaseTable(parent, phases) {
    var wrap = h('div', { 'class': 'table-wrap' }, parent);
    var t = h('table', { 'class': 'phases' }, wrap);
    var tr = h('tr', null, h('thead', null, t));
    ['phase', 'mean', 'p50', 'p90', 'p99', 'max', 'requests'].forEach(function (c) {
      h('th', { scope: 'col' }, tr, c);
    });
    // Requests that had a phase null (seen from a backend only) are not in
    // its figures: a column says how many, when there are any.
    var unknown = phaseRows(phases).some(function (p) { return phases[p].unknown > 0; });
    if (unknown) h('th', { scope: 'col' }, tr, 'unknown');
    var body = h('tbody', null, t);
    phaseRows(phases).forEach(function (p) {
      var v = phases[p];
      var row = h('tr', { 'data-phase': p, 'data-mean-us': v.mean_us,
        'class': p === 'total' ? 'total' : null }, body);
      h('th', { scope: 'row' }, row, p);
      ['mean_us', 'p50_us', 'p90_us', 'p99_us', 'max_us'].forEach(function (f) {
        h('td', { 'data-field': f }, row, fmt(v[f]));
      });
      h('td', null, row, String(v.count));
      if (unknown) h('td', { 'data-field': 'unknown' }, row, String(v.unknown || 0));
    });
  }
  function drawSplit(box, w, phases) {
    var total = phases.total.mean_us || 0;
    var ht = 40, labelW = 0, plotW = w - 2;
    var svg = svgRoot(box, 'split', w, ht, 'The mean request split into phases',
      'Mean total ' + fmt(phases.total.mean_us) + ': server ' + fmt(phases.server.mean_us) +
      ', transport ' + fmt(phases.transport.mean_us) + ', backend ' +
      fmt(phases.backend.mean_us) + '.');
    var at = 0;
    ['server', 'transport', 'backend'].forEach(function (p) {
      var us = phases[p].mean_us || 0;
      var x0 = labelW + (total > 0 ? at / total * plotW : 0);
      var ww = total > 0 ? us / total * plotW : 0;
      var r = s('rect', { 'class': 'seg seg-' + p, 'data-phase': p, 'data-us': us,
        x: x0, y: 2, width: ww, height: 20 }, svg);
      s('title', null, r, p + ' ' + fmt(us));
      if (ww > 70) {
        s('text', { x: x0 + 4, y: 16, style: 'fill:#fff' }, svg, p + ' ' + fmt(us));
      }
      at += us;
    });
    var partial = ['total', 'server', 'transport', 'backend'].some(function (p) {
      return phases[p].unknown > 0;
    });
    s('text', { 'class': 'value', x: 0, y: 36 }, svg, partial
      ? 'means over the requests that had each phase (see "unknown")'
      : 'mean total ' + fmt(phases.total.mean_us) + ' = server + transport + backend');
  }
  function drawPercentiles(box, w, phases) {
    var names = phaseRows(phases).filter(function (p) { return phases[p].count > 0; });
    var vals = [];
    names.forEach(function (p) {
      ['p50_us', 'p90_us', 'p99_us'].forEach(function (f) {
        if (phases[p][f] > 0) vals.push(phases[p][f]);
      });
    });
    var labelW = w < 560 ? 62 : 78, valueW = w < 560 ? 80 : 90;
    var plotW = Math.max(60, w - labelW - valueW - 6);
    var groupH = 40, top = 18;
    var ht = top + names.length * groupH + 4;
    var lo = vals.length ? Math.pow(10, Math.floor(Math.log10(Math.min.apply(null, vals)))) : 1;
    var hi = vals.length ? Math.pow(10, Math.ceil(Math.log10(Math.max.apply(null, vals)))) : 10;
    if (hi <= lo) hi = lo * 10;
    function x(v) {
      return labelW + (Math.log10(Math.max(v, lo)) - Math.log10(lo)) /
        (Math.log10(hi) - Math.log10(lo)) * plotW;
    }
    var desc = names.map(function (p) {
      return p + ': p50 ' + fmt(phases[p].p50_us) + ', p90 ' + fmt(phases[p].p90_us) +
        ', p99 ' + fmt(phases[p].p99_us);
    }).join('; ');
    var svg = svgRoot(box, 'dist', w, ht, 'p50, p90 and p99 of each phase (log scale)', desc);
    var ticks = [];
    for (var t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
    axis(svg, ticks, x, top, ht);
    names.forEach(function (p, i) {
      var y = top + i * groupH;
      s('text', { 'class': 'label', x: 0, y: y + 18 }, svg, p);
      var lane = p === 'queue' ? 'transport' : p === 'tls' ? 'server' : p;
      ['p50', 'p90', 'p99'].forEach(function (k, j) {
        var v = phases[p][k + '_us'];
        var r = s('rect', { 'class': 'pct ' + k + ' lane-' + (lane === 'total' ? 'server' : lane),
          'data-phase': p, 'data-p': k, 'data-us': v,
          x: labelW, y: y + 2 + j * 12, width: Math.max(1, x(v) - labelW), height: 9 }, svg);
        s('title', null, r, p + ' ' + k + ' ' + fmt(v));
        s('text', { 'class': 'value', x: labelW + plotW + 4, y: y + 11 + j * 12 }, svg,
          k + ' ' + fmt(v));
      });
    });
  }
  function phaseSection(parent, rep) {
    var ph = rep.phases;
    if (ph.total.count > 0) {
      chart(parent, null, function (box, w) { drawSplit(box, w, ph); });
    }
    phaseTable(parent, ph);
  }
  function distSection(parent, rep) {
    if (!(rep.phases.total.count > 0)) {
      h('p', { 'class': 'note' }, parent, 'No complete request: no distribution.');
      return;
    }
    chart(parent, 'Each phase\u2019s p50, p90 and p99 over complete requests, on one ' +
      'logarithmic time axis (the table above has the same numbers).',
      function (box, w) { drawPercentiles(box, w, rep.phases); });
  }
  function facts(parent, rep, source) {
    var dl = h('dl', { 'class': 'facts' }, parent);
    function fact(k, v) { h('dt', null, dl, k); h('dd', null, dl, v); }
    if (source) fact('capture', source);
    fact('requests', rep.requests.count + ' (' + rep.requests.complete + ' complete, ' +
      rep.requests.incomplete + ' incomplete)');
    fact('rate', rep.requests.rate_per_s.toFixed(1) + '/s over ' +
      rep.capture.duration_s.toFixed(3) + ' s');
    fact('events', rep.capture.events + ', dropped ' + rep.capture.dropped_events);
    fact('backend timing', rep.backend_timing);
    // Every counted anomaly that is not zero (definitions.md, "Anomalies"):
    // what was not followed or not attributed is said, not hidden.
    var an = rep.anomalies || {};
    var seen = Object.keys(an).filter(function (k) { return an[k] > 0; });
    if (seen.length) {
      h('dt', null, dl, 'anomalies');
      var dd = h('dd', { 'class': 'anomalies' }, dl);
      seen.forEach(function (k, i) {
        h('span', { 'data-anomaly': k, 'data-count': an[k] }, dd,
          (i ? ', ' : '') + k + ' ' + an[k]);
      });
    }
    fact('processes', rep.capture.processes.map(function (p) {
      return p.pid + ' ' + p.comm + ' (' + p.role + ')';
    }).join(', '));
  }
  function averageSection(parent, rep, id, who) {
    if (!rep.timeline || rep.timeline.lines.length === 0) {
      h('p', { 'class': 'note' }, parent, 'No complete request: no average request.');
      return;
    }
    waterfall(parent, averageSpec(rep, id, who));
  }
  function slowestSection(parent, list, of, who) {
    var sec = h('section', { 'class': 'slowest', 'data-of': who || null }, parent);
    h('h2', null, sec, 'The ' + list.length + ' slowest requests' + (who ? ' of ' + who : ''));
    h('p', { 'class': 'note' }, sec, 'Chosen among ' + of + ' complete requests, slowest ' +
      'first, each with its own syscalls.');
    list.forEach(function (q) {
      var art = h('article', { 'class': 'req', 'data-id': q.id, 'data-total-us': q.total_us },
                  sec);
      var id = (who ? who.toLowerCase() + '-' : '') + q.id;
      h('h3', null, art, '#' + q.id + (q.request_line ? ' ' + q.request_line : '') + ': ' +
        fmt(q.total_us) + ' = server ' + fmt(q.server_us) + ' + transport ' +
        fmt(q.transport_us) + ' + backend ' + fmt(q.backend_us) +
        (q.queue_us !== null ? ' (queue ' + fmt(q.queue_us) + ')' : ''));
      h('p', { 'class': 'note' }, art, 'client connection ' + q.client_conn +
        ', backend connection ' + q.backend_conn + ', backend ' + q.backend_timing +
        ', server pid ' + q.pid);
      if (q.calls && q.calls.length > 0) {
        var own = q.backend_own_us;
        var p = h('p', { 'class': 'note calls-line', 'data-own-us': own }, art,
          'backend own ' + fmt(own) + ' of ' + fmt(q.backend_us) + '; calls: ');
        (q.peers || []).forEach(function (pt, i) {
          if (i) p.appendChild(document.createTextNode(', '));
          var sp = h('span', { 'class': 'peer-time', 'data-peer': pt.peer,
            'data-us': pt.us, 'data-calls': pt.calls }, p);
          h('i', { 'class': 'swatch', style: 'background:' + colourOf(pt.peer) }, sp);
          sp.appendChild(document.createTextNode(pt.peer + ' ' + fmt(pt.us) + ' (' +
            pt.calls + (pt.calls === 1 ? ' call)' : ' calls)')));
        });
      }
      waterfall(art, requestSpec(q, id));
    });
  }
  // ---- the backend's calls: per peer, and the slowest queries ----
  function hasCalls(rep) {
    return rep.calls && rep.calls.requests > 0 && rep.calls.peers.length > 0;
  }
  function peerName(p) {
    return p.folded !== null && p.folded !== undefined
      ? 'other peers (' + p.folded + ' folded)' : p.peer;
  }
  function callsSection(parent, rep) {
    var c = rep.calls;
    h('p', { 'class': 'note' }, parent, 'Over ' + c.requests + ' complete requests with a ' +
      'measured backend. Backend own: the backend phase less the union of its calls. ' +
      'A peer\u2019s mean, p50 and p99 are its calls\u2019 summed time per request that ' +
      'called it; calls per request are over all ' + c.requests + '.');
    var wrap = h('div', { 'class': 'table-wrap' }, parent);
    var t = h('table', { 'class': 'calls' }, wrap);
    var tr = h('tr', null, h('thead', null, t));
    ['', 'protocol', 'mean', 'p50', 'p99', 'calls/req', 'requests'].forEach(function (x) {
      h('th', { scope: 'col', 'class': x === 'protocol' ? 'text' : null }, tr, x);
    });
    var body = h('tbody', null, t);
    function row(name, protocol, v, perReq, requests, attrs, colour) {
      var r = h('tr', attrs, body);
      var th = h('th', { scope: 'row' }, r);
      if (colour) h('i', { 'class': 'swatch', style: 'background:' + colour }, th);
      th.appendChild(document.createTextNode(name));
      h('td', { 'class': 'text' }, r, protocol || '');
      ['mean_us', 'p50_us', 'p99_us'].forEach(function (f) {
        h('td', { 'data-field': f }, r, v ? fmt(v[f]) : '-');
      });
      h('td', { 'data-field': 'calls_per_request' }, r,
        perReq === null ? '' : perReq.toFixed(2));
      h('td', null, r, requests === null ? '' : String(requests));
    }
    var own = c.backend_own;
    row('backend own', null, own, null, own ? own.count : null,
        { 'data-peer': '(own)', 'data-mean-us': own ? own.mean_us : null,
          'data-p50-us': own ? own.p50_us : null, 'data-p99-us': own ? own.p99_us : null,
          'class': 'own' }, '#59a14f');
    c.peers.forEach(function (p) {
      var other = p.folded !== null && p.folded !== undefined;
      row(peerName(p), p.protocol, p.time, p.calls_per_request, p.requests,
          { 'data-peer': other ? '(other)' : p.peer, 'data-mean-us': p.time.mean_us,
            'data-p50-us': p.time.p50_us, 'data-p99-us': p.time.p99_us,
            'data-calls-per-request': p.calls_per_request, 'data-calls': p.calls },
          other ? '#bab0ac' : colourOf(p.peer));
    });
    if (!c.slowest || c.slowest.length === 0) return;
    h('h3', null, parent, 'The slowest queries');
    h('p', { 'class': 'note' }, parent, 'The ' + c.slowest.length + ' slowest calls that ' +
      'carried a query (--payload): SQL cut to the payload size, a Redis command\u2019s ' +
      'name only.');
    wrap = h('div', { 'class': 'table-wrap' }, parent);
    t = h('table', { 'class': 'slowest-queries' }, wrap);
    tr = h('tr', null, h('thead', null, t));
    ['time', 'peer', 'request', 'query'].forEach(function (x) {
      h('th', { scope: 'col', 'class': x === 'peer' || x === 'query' ? 'text' : null },
        tr, x);
    });
    body = h('tbody', null, t);
    c.slowest.forEach(function (q) {
      var r = h('tr', { 'data-us': q.us, 'data-request-id': q.request_id,
                        'data-peer': q.peer }, body);
      h('td', null, r, fmt(q.us));
      h('td', { 'class': 'text' }, r, q.peer);
      h('td', null, r, '#' + q.request_id);
      h('td', { 'class': 'text query' }, r, q.query);
    });
  }
  function laneKey(parent) {
    key(parent, [['server', '#4e79a7'], ['transport', '#f28e2b'], ['backend', '#59a14f'],
                 ['queue', '#e15759']]);
  }
  function hatch() {
    var svg = s('svg', { width: 0, height: 0, 'aria-hidden': 'true',
      style: 'position:absolute' }, document.body);
    var pat = s('pattern', { id: 'rc-hatch', width: 6, height: 6,
      patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' }, s('defs', null, svg));
    s('rect', { width: 6, height: 6, fill: '#fbe3e4' }, pat);
    s('line', { x1: 0, y1: 0, x2: 0, y2: 6, stroke: '#e15759', 'stroke-width': 3 }, pat);
  }

  function renderReport(app, d) {
    var rep = d.report;
    facts(app, rep, d.source);
    var sec = h('section', { id: 'phases' }, app);
    h('h2', null, sec, 'Phases (complete requests)');
    phaseSection(sec, rep);
    if (hasCalls(rep)) {
      rep.calls.peers.forEach(function (p) { colourOf(p.peer); });
      sec = h('section', { id: 'calls' }, app);
      h('h2', null, sec, 'Backend calls');
      callsSection(sec, rep);
    }
    sec = h('section', { id: 'average' }, app);
    h('h2', null, sec, 'The average request');
    laneKey(sec);
    averageSection(sec, rep, 'average');
    sec = h('section', { id: 'distributions' }, app);
    h('h2', null, sec, 'Per-phase distributions');
    distSection(sec, rep);
    slowestSection(app, d.slowest, d.slowest_of);
  }

  function drawPairs(box, w, c, names) {
    var labelW = 78, valueW = w < 560 ? 70 : 150;
    var plotW = Math.max(60, w - labelW - valueW - 6);
    var groupH = 30, ht = names.length * groupH + 4, max = 0;
    names.forEach(function (p) {
      max = Math.max(max, c.a.phases[p].mean_us || 0, c.b.phases[p].mean_us || 0);
    });
    if (!(max > 0)) max = 1;
    var svg = svgRoot(box, 'pairs', w, ht, 'Mean of each phase, A and B', names.map(function (p) {
      return p + ': A ' + fmt(c.a.phases[p].mean_us) + ', B ' + fmt(c.b.phases[p].mean_us);
    }).join('; '));
    names.forEach(function (p, i) {
      var y = i * groupH;
      s('text', { 'class': 'label', x: 0, y: y + 17 }, svg, p);
      [['a', 2], ['b', 13]].forEach(function (ab) {
        var v = c[ab[0]].phases[p].mean_us;
        var r = s('rect', { 'class': 'bar-' + ab[0], 'data-phase': p, 'data-side': ab[0],
          'data-us': v, x: labelW, y: y + ab[1], width: Math.max(1, (v || 0) / max * plotW),
          height: 10 }, svg);
        s('title', null, r, ab[0].toUpperCase() + ' ' + p + ' ' + fmt(v));
        s('text', { 'class': 'value', x: labelW + plotW + 4, y: y + ab[1] + 9 }, svg,
          ab[0].toUpperCase() + ' ' + fmt(v));
      });
    });
  }
  function renderCompare(app, d) {
    var c = d.compare;
    var dl = h('dl', { 'class': 'facts' }, app);
    h('dt', null, dl, 'A (baseline)'); h('dd', null, dl, d.a_source);
    h('dt', null, dl, 'B'); h('dd', null, dl, d.b_source);
    var sec = h('section', { id: 'verdict' }, app);
    h('h2', null, sec, 'B against A');
    var names = phaseRows(c.a.phases).filter(function (p) {
      return c.delta[p] && (c.a.phases[p].count > 0 || c.b.phases[p].count > 0);
    });
    var withCi = names.some(function (p) { return c.delta[p].ci95_us !== undefined; });
    var withClear = names.some(function (p) { return c.delta[p].clear !== undefined; });
    if (c.verdict !== undefined) h('p', { 'class': 'verdict' }, sec, c.verdict);
    var wrap = h('div', { 'class': 'table-wrap' }, sec);
    var t = h('table', { 'class': 'compare-phases' }, wrap);
    var tr = h('tr', null, h('thead', null, t));
    var head = ['phase', 'A mean', 'B mean', 'B \u2212 A', '%'];
    if (withCi) head.push('95% interval');
    if (withClear) head.push('difference');
    head.forEach(function (x) { h('th', { scope: 'col' }, tr, x); });
    var body = h('tbody', null, t);
    names.forEach(function (p) {
      var dd = c.delta[p];
      var row = h('tr', { 'data-phase': p, 'data-a-us': c.a.phases[p].mean_us,
        'data-b-us': c.b.phases[p].mean_us, 'data-delta-us': dd.mean_us,
        'class': p === 'total' ? 'total' : null }, body);
      h('th', { scope: 'row' }, row, p);
      h('td', null, row, fmt(c.a.phases[p].mean_us));
      h('td', null, row, fmt(c.b.phases[p].mean_us));
      h('td', null, row, signed(dd.mean_us));
      h('td', null, row, dd.pct === null || dd.pct === undefined ? '-' :
        (dd.pct > 0 ? '+' : '') + dd.pct.toFixed(1) + '%');
      if (withCi) {
        h('td', { 'class': 'ci' }, row, dd.ci95_us ? '[' + signed(dd.ci95_us[0]) + ', ' +
          signed(dd.ci95_us[1]) + ']' : '-');
      }
      if (withClear) {
        h('td', { 'class': 'clear' + (dd.clear === false ? ' clear-no' : '') }, row,
          dd.clear === undefined ? '-' : dd.clear ? 'clear' : '~ no clear difference');
      }
    });
    h('p', { 'class': 'note' }, sec, withCi ? 'B \u2212 A of each phase\u2019s mean, ' +
      'with its 95% confidence interval; "no clear difference" when the interval ' +
      'allows none.' : 'B \u2212 A of each phase\u2019s mean (this comparison carries ' +
      'no confidence interval).');
    key(sec, [['A', '#8c8c8c'], ['B', '#4e79a7']]);
    chart(sec, null, function (box, w) { drawPairs(box, w, c, names); });

    var cols = h('div', { 'class': 'cols' }, app);
    [['A', c.a, d.a_source], ['B', c.b, d.b_source]].forEach(function (it) {
      var col = h('section', { 'class': 'side', 'data-side': it[0] }, cols);
      h('h2', null, col, it[0] + ': ' + it[2]);
      facts(col, it[1], null);
      h('h3', null, col, 'Phases');
      phaseSection(col, it[1]);
      if (hasCalls(it[1])) {
        it[1].calls.peers.forEach(function (p) { colourOf(p.peer); });
        var calls = h('section', { 'class': 'calls', 'data-side': it[0] }, col);
        h('h3', null, calls, 'Backend calls');
        callsSection(calls, it[1]);
      }
      h('h3', null, col, 'The average request');
      laneKey(col);
      averageSection(col, it[1], 'average-' + it[0].toLowerCase(), it[0]);
      h('h3', null, col, 'Per-phase distributions');
      distSection(col, it[1]);
    });
    slowestSection(app, d.a_slowest, d.a_slowest_of, 'A');
    slowestSection(app, d.b_slowest, d.b_slowest_of, 'B');
  }

  function redraw() { draws.forEach(function (f) { f(); }); }
  var app = document.getElementById('app');
  try {
    var d = JSON.parse(document.getElementById('reqcost-data').textContent);
    hatch();
    if (d.page === 'compare') renderCompare(app, d); else renderReport(app, d);
    redraw();
    var pending = null, lastW = window.innerWidth;
    window.addEventListener('resize', function () {
      if (window.innerWidth === lastW) return;
      lastW = window.innerWidth;
      clearTimeout(pending);
      pending = setTimeout(redraw, 100);
    });
    document.body.setAttribute('data-rendered', 'ok');
  } catch (e) {
    h('p', { id: 'render-error' }, app, 'This page could not draw its charts: ' + e);
    document.body.setAttribute('data-rendered', 'error');
  }
})();
