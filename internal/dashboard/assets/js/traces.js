// Traces: search the traces the control plane holds by service and
// minimum duration, newest first; a trace opens its waterfall.
import {h, problem, replace} from './dom.js';
import {getJSON} from './app.js';
import {traceRows} from './service.js';

export function mount(main, r) {
  const p = r.params;
  const service = h('select', {name: 'service', id: 'traces-service'}, h('option', {value: ''}, 'any service'));
  const min = h('input', {name: 'minDuration', id: 'traces-min', value: p.get('minDuration') || '', placeholder: 'e.g. 10ms', size: 8});
  const limit = h('input', {name: 'limit', id: 'traces-limit', value: p.get('limit') || '20', size: 4, inputmode: 'numeric'});
  const out = h('div', {id: 'traces-out'}, h('p', {class: 'note'}, 'Loading…'));
  const form = h('form', {class: 'search', id: 'traces-form'},
    h('label', {}, 'Service ', service), h('label', {}, 'At least ', min), h('label', {}, 'Limit ', limit),
    h('button', {type: 'submit'}, 'Search'));
  main.append(h('h1', {}, 'Traces'), form, out);

  const search = async () => {
    const q = new URLSearchParams();
    if (service.value) q.set('service', service.value);
    if (min.value.trim()) q.set('minDuration', min.value.trim());
    if (limit.value.trim()) q.set('limit', limit.value.trim());
    try {
      const l = await getJSON('traces?' + q.toString());
      replace(out, h('p', {class: 'note'}, `${l.traces.length} traces, newest first.`), traceRows(l.traces));
    } catch (err) {
      replace(out, problem(err.message));
    }
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, el] of [['service', service], ['minDuration', min], ['limit', limit]]) if (el.value.trim()) q.set(k, el.value.trim());
    history.replaceState(null, '', '#/traces?' + q.toString());
    search();
  });
  // The services to choose from are the overview's.
  let gone = false;
  getJSON('overview').then((o) => {
    if (gone) return;
    for (const sv of o.services) service.append(h('option', {value: sv.name}, sv.name));
    service.value = p.get('service') || '';
    search();
  }, (err) => replace(out, problem(err.message)));
  return () => { gone = true; };
}
