// One trace as a waterfall: every span a row, indented under its
// parent, its bar placed in the trace's time; a span shows its
// attributes and events when clicked.
import {h, problem, replace, section, table} from './dom.js';
import {dur, stamp} from './format.js';
import {getJSON, link} from './app.js';

export function mount(main, r) {
  const id = r.name;
  const head = h('div', {}, h('h1', {id: 'trace-title'}, 'Trace ' + id), h('p', {class: 'note'}, 'Loading…'));
  const body = h('div', {id: 'trace-body'});
  main.append(head, body);
  let gone = false;
  getJSON('trace/' + encodeURIComponent(id)).then((t) => {
    if (!gone) draw(head, body, t);
  }, (err) => {
    if (!gone) replace(body, problem(err.message));
  });
  return () => { gone = true; };
}

// flatten lists the spans depth first, each with its depth.
function flatten(roots) {
  const out = [];
  const walk = (n, depth) => {
    out.push({span: n, depth});
    for (const c of n.children || []) walk(c, depth + 1);
  };
  for (const r of roots || []) walk(r, 0);
  return out;
}

// instant reads an RFC 3339 time to the nanosecond, as whole seconds
// and nanoseconds (a Date keeps only milliseconds).
function instant(ts) {
  const m = /^(.*:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(ts || '');
  if (!m) return [0, 0];
  return [Date.parse(m[1] + m[3]) / 1000, m[2] ? Number((m[2] + '000000000').slice(0, 9)) : 0];
}

function draw(head, body, t) {
  const rows = flatten(t.roots);
  const starts = rows.map((x) => instant(x.span.start));
  const [s0, n0] = starts.reduce((a, b) => (b[0] < a[0] || (b[0] === a[0] && b[1] < a[1]) ? b : a));
  const since = ([s, n]) => (s - s0) * 1e9 + (n - n0); // nanoseconds after the trace's first start
  const total = Math.max(1, ...rows.map((x, i) => since(starts[i]) + x.span.duration));
  replace(head,
    h('h1', {id: 'trace-title'}, 'Trace ', h('code', {}, t.traceId)),
    h('p', {class: 'summary'}, `${t.rootService} ${t.rootName}: ${dur(t.duration)}, ${t.spans} spans across ${(t.services || []).join(', ')}` +
      (t.errors ? `, ${t.errors} with errors` : '') + `; began ${stamp(t.start)}.`,
    ' Services: ', (t.services || []).map((sv, i) => [i ? ', ' : '', h('a', {href: link('service', sv)}, sv)])));
  const detail = h('div', {id: 'span-detail'});
  const fall = h('div', {class: 'waterfall', id: 'waterfall'},
    h('div', {class: 'wf-row wf-axis'}, h('div', {class: 'wf-label'}, 'Span'),
      h('div', {class: 'wf-track'}, h('span', {class: 'wf-tick start'}, '0'), h('span', {class: 'wf-tick end'}, dur(total)))));
  rows.forEach(({span, depth}, i) => {
    const start = since(starts[i]);
    const bar = h('div', {class: 'wf-bar ' + span.kind + (span.status === 'error' ? ' error' : '')});
    bar.style.left = (start / total * 100).toFixed(3) + '%';
    bar.style.width = Math.max(span.duration / total * 100, 0.3).toFixed(3) + '%';
    const label = h('div', {class: 'wf-label', title: `${span.service} ${span.name}`},
      h('b', {}, span.service), ' ', span.name, span.parentMissing ? h('span', {class: 'tag'}, 'parent missing') : null);
    label.style.paddingLeft = (depth * 14 + 4) + 'px';
    const row = h('div', {class: 'wf-row span-row', 'data-span': span.spanId, tabindex: 0, role: 'button'},
      label, h('div', {class: 'wf-track'}, bar, h('span', {class: 'wf-dur'}, dur(span.duration))));
    const show = () => {
      for (const el of fall.querySelectorAll('.span-row.on')) el.classList.remove('on');
      row.classList.add('on');
      replace(detail, spanDetail(span));
    };
    row.addEventListener('click', show);
    row.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') show(); });
    fall.append(row);
  });
  replace(body, fall, detail);
}

function spanDetail(sp) {
  const attrs = (sp.attributes || []).map((a) => h('tr', {}, h('td', {}, a.key), h('td', {}, a.value)));
  const events = (sp.events || []).map((e) => h('tr', {}, h('td', {}, stamp(e.time)), h('td', {}, e.name),
    h('td', {}, (e.attributes || []).map((a) => `${a.key}=${a.value}`).join(', '))));
  return section(`${sp.service}: ${sp.name}`, 'span',
    h('p', {}, `${sp.kind} span ${sp.spanId}, ${dur(sp.duration)}, status ${sp.status}` + (sp.statusMessage ? `: ${sp.statusMessage}` : '')),
    table('attributes', ['Attribute', 'Value'], attrs, 'No attributes.'),
    events.length ? table('events', ['Time', 'Event', 'Attributes'], events) : null);
}
