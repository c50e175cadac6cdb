// Topology: the live call graph, services as nodes and calls as edges
// with requests/s, success rate and p99, laid out in layers by call
// depth (callers left, the services they call right). A service's node
// opens its page.
import {h, num, problem, replace, s, section, table} from './dom.js';
import {clock, dur, pct, rate} from './format.js';
import {alarmBadge, currentWindow, link, stream} from './app.js';

const COL = 330;
const ROW = 110;
const NODE_W = 150;
const NODE_H = 52;
const PAD = 24;
const TOP = 56; // room above the first row for loops

export function mount(main) {
  const summary = h('p', {class: 'summary'}, 'Loading…');
  const graph = h('div', {class: 'graph scroll', id: 'graph'});
  const edges = h('div', {id: 'edges'});
  main.append(h('h1', {}, 'Topology'), summary, graph, edges);
  return stream('overview', {window: currentWindow()}, (o) => {
    alarmBadge(o.firing, o.pending);
    replace(summary, `Calls over the last ${o.window}, as the callers' sidecars counted them. As of ${clock(o.time)}.`);
    replace(graph, draw(o));
    replace(edges, section('Calls', 'calls', edgeTable(o.edges)));
  }, (msg) => replace(graph, problem(msg)));
}

// layout places each node in a layer by its call depth: the longest
// chain of calls that leads to it from a node nobody calls (loops are
// cut where they close).
export function layout(names, edges) {
  const out = new Map(names.map((n) => [n, []]));
  const indeg = new Map(names.map((n) => [n, 0]));
  for (const e of edges) {
    if (e.source === e.destination) continue;
    out.get(e.source).push(e.destination);
    indeg.set(e.destination, indeg.get(e.destination) + 1);
  }
  const depth = new Map();
  const onPath = new Set();
  const visit = (n, d) => {
    if (onPath.has(n) || (depth.get(n) ?? -1) >= d) return;
    depth.set(n, d);
    onPath.add(n);
    for (const m of out.get(n)) visit(m, d + 1);
    onPath.delete(n);
  };
  const roots = names.filter((n) => indeg.get(n) === 0);
  for (const r of (roots.length ? roots : names.slice(0, 1))) visit(r, 0);
  for (const n of names) if (!depth.has(n)) visit(n, 0);
  const layers = [];
  for (const n of names) {
    const d = depth.get(n);
    (layers[d] ||= []).push(n);
  }
  const pos = new Map();
  layers.forEach((layer, d) => layer.sort().forEach((n, i) => pos.set(n, {x: PAD + d * COL, y: TOP + i * ROW, depth: d})));
  return {pos, width: PAD * 2 + (layers.length - 1) * COL + NODE_W, height: TOP + PAD + (Math.max(1, ...layers.map((l) => (l || []).length)) - 1) * ROW + NODE_H + 60};
}

function draw(o) {
  const known = new Map(o.services.map((sv) => [sv.name, sv]));
  const names = [...new Set([...o.services.map((sv) => sv.name), ...o.edges.flatMap((e) => [e.source, e.destination])])].sort();
  if (!names.length) return h('p', {class: 'empty'}, 'No service yet.');
  const {pos, width, height} = layout(names, o.edges);
  const svg = s('svg', {class: 'topology', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'call graph'});
  svg.append(s('defs', {}, s('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse'},
    s('path', {d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead'}))));
  for (const e of o.edges) {
    const a = pos.get(e.source);
    const b = pos.get(e.destination);
    let d;
    let lx;
    let ly;
    if (e.source === e.destination) { // a service calling itself: a loop above its node
      d = `M${a.x + NODE_W * 0.3},${a.y} C${a.x + NODE_W * 0.3},${a.y - 42} ${a.x + NODE_W * 0.7},${a.y - 42} ${a.x + NODE_W * 0.7},${a.y}`;
      lx = a.x + NODE_W / 2;
      ly = a.y - 38;
    } else if (b.depth > a.depth) {
      const x1 = a.x + NODE_W;
      const y1 = a.y + NODE_H / 2;
      const x2 = b.x;
      const y2 = b.y + NODE_H / 2;
      const mx = (x1 + x2) / 2;
      d = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
      lx = mx;
      ly = (y1 + y2) / 2 - 6;
    } else { // a call back to a layer at or left of its caller: below the nodes
      const x1 = a.x + NODE_W / 2;
      const x2 = b.x + NODE_W / 2;
      const y = Math.max(a.y, b.y) + NODE_H;
      d = `M${x1},${a.y + NODE_H} C${x1},${y + 50} ${x2},${y + 50} ${x2},${b.y + NODE_H}`;
      lx = (x1 + x2) / 2;
      ly = y + 40;
    }
    const bad = e.alarm ? 'alarm-' + e.alarm : (e.successRate < 0.99 ? 'degraded' : '');
    svg.append(s('g', {class: 'edge ' + bad, 'data-source': e.source, 'data-destination': e.destination},
      s('title', {}, `${e.source} → ${e.destination}: ${rate(e.rps)} rps, ${pct(e.successRate)} success, p99 ${dur(e.p99)}`),
      s('path', {d, 'marker-end': 'url(#arrow)'}),
      s('text', {x: lx, y: ly, 'text-anchor': 'middle', class: 'edge-label'}, `${rate(e.rps)}/s · ${pct(e.successRate)} · ${dur(e.p99)}`)));
  }
  for (const n of names) {
    const p = pos.get(n);
    const sv = known.get(n);
    const g = sv && sv.golden;
    const cls = ['node', sv ? 'service' : 'outside', sv && sv.alarm ? 'alarm-' + sv.alarm : ''].join(' ');
    const node = s('g', {class: cls, 'data-service': n, transform: `translate(${p.x},${p.y})`, tabindex: sv ? 0 : null, role: sv ? 'link' : null},
      s('title', {}, sv ? `${n}: open its page` : `${n}: not a service of the mesh`),
      s('rect', {width: NODE_W, height: NODE_H, rx: 8}),
      s('text', {x: NODE_W / 2, y: 21, 'text-anchor': 'middle', class: 'node-name'}, n),
      s('text', {x: NODE_W / 2, y: 40, 'text-anchor': 'middle', class: 'node-figures'},
        g ? `${rate(g.rps)}/s · ${pct(g.successRate)}` : (sv ? `${sv.ready}/${sv.instances} ready` : '')));
    if (sv) {
      const go = () => { location.hash = link('service', n); };
      node.addEventListener('click', go);
      node.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') go(); });
    }
    svg.append(node);
  }
  return svg;
}

export function edgeTable(edges) {
  const rows = edges.map((e) => h('tr', {'data-source': e.source, 'data-destination': e.destination, class: e.alarm ? 'alarm-' + e.alarm : ''},
    h('td', {}, e.source), h('td', {}, e.destination),
    num('requests', e.requests, String(e.requests)),
    num('rps', e.rps, rate(e.rps)),
    num('successRate', e.successRate, pct(e.successRate)),
    num('p99', e.p99, dur(e.p99))));
  return table('edges', ['Source', 'Destination', 'Requests', 'Requests/s', 'Success', 'P99'], rows, 'No calls in this window.');
}
