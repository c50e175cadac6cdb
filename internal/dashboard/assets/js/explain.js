// The explain view: what a sidecar of the calling service would do with
// a request to this service, from its own live state (weft explain).
import {h, problem, replace, section, table} from './dom.js';
import {pct} from './format.js';
import {getJSON} from './app.js';

export function explainForm(to) {
  const from = h('select', {name: 'from', id: 'explain-from', required: true});
  const method = h('input', {name: 'method', id: 'explain-method', value: 'GET', size: 7, autocomplete: 'off'});
  const path = h('input', {name: 'path', id: 'explain-path', value: '/', size: 28, autocomplete: 'off'});
  const headers = h('textarea', {name: 'header', id: 'explain-headers', rows: 2, cols: 32, placeholder: 'x-user: beta (one a line)'});
  const grpc = h('input', {type: 'checkbox', name: 'grpc', id: 'explain-grpc'});
  const out = h('div', {id: 'explain-out'});
  const form = h('form', {class: 'explain', id: 'explain-form'},
    h('label', {}, 'From ', from), h('label', {}, 'Method ', method), h('label', {}, 'Path ', path),
    h('label', {}, 'Headers ', headers), h('label', {}, grpc, ' gRPC'),
    h('button', {type: 'submit', id: 'explain-go'}, 'Explain'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams({from: from.value, to, method: method.value, path: path.value});
    for (const line of headers.value.split('\n')) if (line.trim()) q.append('header', line.trim());
    if (grpc.checked) q.set('grpc', '1');
    replace(out, h('p', {class: 'note'}, 'Asking…'));
    try {
      replace(out, render(await getJSON('explain?' + q.toString())));
    } catch (err) {
      replace(out, problem(err.message));
    }
  });
  const el = section(`Explain a request to ${to}`, 'explain', form, out);
  let known = '';
  return {
    el,
    // callers sets the services to explain from; the first that calls
    // the service now is chosen, unless one was chosen already.
    callers(list, calling) {
      const key = list.join(',');
      if (key === known) return;
      const keep = known ? from.value : (calling || []).find((c) => list.includes(c));
      known = key;
      replace(from, list.map((c) => h('option', {value: c}, c)));
      if (list.includes(keep)) from.value = keep;
    },
  };
}

function render(r) {
  const x = r.explanation;
  const parts = [h('p', {class: 'explain-request'}, `${x.request} to ${x.to}, as sidecar ${x.from || r.sidecar} would route it now.`)];
  if (x.routes && x.routes.length) {
    parts.push(table('explain-routes', ['Rule', 'Match', 'Verdict'], x.routes.map((rt) => h('tr', {class: rt.matched ? 'ok' : ''},
      h('td', {}, rt.rule), h('td', {}, rt.match), h('td', {}, rt.matched ? 'matches' : 'no: ' + rt.why)))));
  }
  parts.push(h('p', {class: 'decision', id: 'explain-decision'}, h('b', {}, 'Decision: '), x.decision));
  if (x.error) parts.push(problem(`${x.error.status} ${x.error.reason}: ${x.error.message}`));
  for (const f of x.faults || []) parts.push(h('p', {}, 'Fault: ' + f));
  for (const b of x.backends || []) {
    parts.push(h('h3', {}, `Backend ${b.name}, ${b.share}% of requests`));
    if (b.invalid) {
      parts.push(problem(`invalid: ${b.invalid} (its share gets 500 invalid-backend)`));
      continue;
    }
    const p = b.policy;
    if (p) {
      parts.push(h('p', {}, `Policy ${p.resource || '(defaults)'}: balancer ${p.balancer}, timeout ${p.requestTimeout}` +
        (p.perTryTimeout ? `, per try ${p.perTryTimeout}` : '') + `, ${p.attempts} attempts, budget ${p.retryBudget}` +
        (p.circuitBreaker ? `, breaker ${p.circuitBreaker}` : '')));
    }
    if (b.breaker) parts.push(h('p', {}, 'Breaker: ' + b.breaker));
    parts.push(table('candidates', ['Instance', 'Address', 'Health', 'In flight', 'Peak latency', 'Failure rate', 'Attempts', 'Ejections'],
      (b.candidates || []).map((c) => h('tr', {}, h('td', {}, c.instance), h('td', {}, c.address), h('td', {}, c.health),
        h('td', {}, String(c.inFlight || 0)), h('td', {}, c.peakLatency || '-'), h('td', {}, pct(c.failureRate || 0)),
        h('td', {}, String(c.attempts || 0)), h('td', {}, String(c.ejections || 0)))),
    'No instance: requests get 503 no-ready-instance.'));
  }
  return parts;
}
