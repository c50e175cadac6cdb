// Live requests: what weft top prints, the requests the sidecars serve
// as they end, newest first.
import {h, problem, replace} from './dom.js';
import {clock, dur} from './format.js';
import {link, stream} from './app.js';

const KEEP = 200;

export function mount(main, r) {
  const service = r.params.get('service') || '';
  const summary = h('p', {class: 'summary'}, 'Waiting for requests…');
  const tbody = h('tbody', {id: 'live-rows'});
  const pause = h('button', {type: 'button', id: 'live-pause'}, 'Pause');
  const issues = h('div', {});
  let paused = false;
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
  });
  main.append(h('h1', {}, 'Live requests' + (service ? ' of ' + service : '')), h('div', {class: 'toolbar'}, summary, pause), issues,
    h('div', {class: 'scroll'}, h('table', {class: 'live'},
      h('thead', {}, h('tr', {}, ['Time', 'Sidecar', 'Direction', 'Source', 'Destination', 'Method', 'Path', 'Status', 'Latency', 'Instance', 'Error', 'Trace'].map((c) => h('th', {}, c)))),
      tbody)));
  let seen = 0;
  return stream('live', service ? {service} : {}, (l) => {
    replace(issues, (l.problems || []).map(problem));
    if (paused) return;
    seen += l.requests.length;
    for (const x of l.requests) tbody.prepend(row(x));
    while (tbody.children.length > KEEP) tbody.lastChild.remove();
    replace(summary, `${seen} requests from ${l.sidecars} sidecars since this page opened; the newest ${Math.min(seen, KEEP)} shown. As of ${clock(l.time)}.`);
  }, (msg) => replace(issues, problem(msg)));
}

function row(x) {
  const bad = x.error || x.status >= 500;
  return h('tr', {class: bad ? 'bad' : '', 'data-id': x.id},
    h('td', {}, clock(x.time)), h('td', {}, x.from), h('td', {}, x.direction), h('td', {}, x.source || '-'),
    h('td', {}, h('a', {href: link('service', x.service)}, x.service)), h('td', {}, x.method), h('td', {class: 'path'}, x.path),
    h('td', {class: 'num'}, String(x.status)), h('td', {class: 'num'}, dur(x.duration)), h('td', {}, x.instance || '-'),
    h('td', {}, x.error ? h('code', {title: x.error.message}, x.error.error) : '-'),
    h('td', {}, x.traceId ? h('a', {href: link('trace', x.traceId), class: 'trace-link'}, x.traceId.slice(0, 8) + '…') : '-'));
}
