// Service: its instances with health by each signal, labels, latency
// estimate, ejection and breaker state as every sidecar sees them; the
// routes and policy in force (rendered, and as YAML); recent mesh
// errors by x-weft-error reason; recent traces; and the explain view
// for a request typed in.
import {h, num, problem, replace, section, table} from './dom.js';
import {alertValue, clock, dur, labels, pct, rate, spark, stamp} from './format.js';
import {currentWindow, link, stream} from './app.js';
import {edgeTable} from './topology.js';
import {explainForm} from './explain.js';

export function mount(main, r) {
  const name = r.name;
  const head = h('div', {id: 'service-head'}, h('h1', {id: 'service-title'}, name), h('p', {class: 'summary'}, 'Loading…'));
  const body = h('div', {id: 'service-body'});
  const explain = explainForm(name);
  main.append(head, body, explain.el);
  const open = new Set(); // the YAML blocks opened, kept open across updates
  return stream('service', {name, window: currentWindow()}, (p) => {
    explain.callers(p.callers, p.in.map((e) => e.source));
    replace(head, headOf(p));
    for (const d of body.querySelectorAll('details[data-ref]')) if (d.open) open.add(d.dataset.ref); else open.delete(d.dataset.ref);
    replace(body, bodyOf(p, open));
  }, (msg) => replace(body, problem(msg)));
}

function headOf(p) {
  const g = p.golden;
  const tile = (label, field, value, text) => h('div', {class: 'tile'}, h('div', {class: 'tile-label'}, label),
    h('div', {class: 'tile-value', 'data-field': field, 'data-value': value ?? ''}, text));
  return [
    h('h1', {id: 'service-title'}, p.name, p.kind ? h('span', {class: 'tag'}, p.kind) : h('span', {class: 'tag'}, 'not registered')),
    h('p', {class: 'summary'}, `Over the last ${p.window}, as its instances' sidecars counted what they received. As of ${clock(p.time)}.`),
    h('div', {class: 'tiles'},
      tile('Ready', 'ready', p.ready, `${p.ready}/${p.instances}`),
      tile('Requests', 'requests', g ? g.requests : null, g ? String(g.requests) : '-'),
      tile('Requests/s', 'rps', g ? g.rps : null, g ? rate(g.rps) : '-'),
      tile('Success', 'successRate', g ? g.successRate : null, g ? pct(g.successRate) : '-'),
      tile('P50', 'p50', g ? g.p50 : null, g ? dur(g.p50) : '-'),
      tile('P95', 'p95', g ? g.p95 : null, g ? dur(g.p95) : '-'),
      tile('P99', 'p99', g ? g.p99 : null, g ? dur(g.p99) : '-'),
      h('div', {class: 'tile wide'}, h('div', {class: 'tile-label'}, 'Last hour: requests/s, failures, p99'),
        spark(p.spark.rps, 'rps', 'requests/s by the minute', 160, 32),
        spark((p.spark.successRate || []).map((v) => 1 - v), 'fail', 'failure rate by the minute', 160, 32),
        spark(p.spark.p99, 'p99', 'p99 by the minute', 160, 32))),
  ];
}

function bodyOf(p, open) {
  return [
    p.problems && p.problems.length ? p.problems.map(problem) : null,
    p.alerts.length ? section('Alarms', 'service-alarms', alertRows(p.alerts)) : null,
    section('Instances', 'instances', instances(p)),
    section('Sidecars calling it', 'sidecars', sidecars(p.sidecars)),
    section('Calls in', 'calls-in', edgeTable(p.in)),
    section('Calls out', 'calls-out', edgeTable(p.out)),
    section('Policy in force', 'policy', policy(p)),
    section('Routes in force', 'routes', routes(p)),
    section('Resources (YAML)', 'resources', resources(p.resources, open)),
    section('Recent errors by x-weft-error', 'errors', errors(p)),
    section('Recent traces', 'service-traces', traceRows(p.traces)),
  ];
}

function alertRows(alerts) {
  const rows = alerts.map((a) => h('tr', {class: 'alarm-' + a.state},
    h('td', {}, a.rule), h('td', {}, h('span', {class: 'tag ' + a.state}, a.state)), h('td', {}, a.metric + ' ' + (a.op === 'below' ? '<' : '>') + ' ' + alertValue(a.metric, a.threshold)),
    h('td', {}, a.window), h('td', {}, stamp(a.since))));
  return table('alerts', ['Rule', 'State', 'Condition', 'Window', 'Since'], rows);
}

// seenWord is one sidecar's view of an instance, in a cell.
function seenWord(e) {
  const parts = [e.health + (e.deferred ? ` (deferred until ${clock(e.deferredUntil)})` : '')];
  if (e.peakLatency) parts.push('peak ' + e.peakLatency);
  if (e.latency) parts.push('ewma ' + e.latency);
  if (e.attempts) parts.push(`${e.attempts} attempts` + (e.failures ? `, ${e.failures} failed` : ''));
  if (e.failureRate) parts.push('failing ' + pct(e.failureRate));
  if (e.inFlight) parts.push(`${e.inFlight} in flight`);
  if (e.ejections) parts.push(`${e.ejections} ejections (${e.ejectReason})`);
  if (e.ejectedUntil) parts.push('ejected until ' + clock(e.ejectedUntil));
  return parts.join(' · ');
}

function instances(p) {
  const rows = p.instanceList.map((in_) => {
    const g = in_.golden;
    const called = in_.seen.filter((e) => e.attempts || e.health !== 'ready');
    const quiet = in_.seen.length - called.length;
    return h('tr', {'data-instance': in_.id},
      h('td', {}, in_.id || '(external)'), h('td', {}, in_.address), h('td', {}, labels(in_.labels)),
      h('td', {class: in_.ready ? 'ok' : 'bad'}, in_.ready ? 'ready' : (in_.since ? 'not ready' : '-')),
      num('requests', g ? g.requests : null, g ? String(g.requests) : '-'),
      num('successRate', g ? g.successRate : null, g ? pct(g.successRate) : '-'),
      num('p99', g ? g.p99 : null, g ? dur(g.p99) : '-'),
      h('td', {class: 'seen'}, called.map((e) => h('div', {class: 'seen-by health-' + e.health}, h('b', {}, e.sidecar + ': '), seenWord(e))),
        quiet ? h('div', {class: 'quiet'}, `${quiet} other sidecars: ready, not called yet`) : null));
  });
  const ext = (p.externalEndpoints || []).map((e) => h('tr', {}, h('td', {}, '(external)'), h('td', {}, e.address), h('td', {}, labels(e.labels)),
    h('td', {}, 'unchecked'), h('td', {colspan: 4}, '')));
  return table('instances', ['Instance', 'Address', 'Labels', 'Registry', 'Received', 'Success', 'P99', 'As each calling sidecar sees it'], [...rows, ...ext],
    'No instance.');
}

function sidecars(list) {
  const rows = list.filter((v) => v.attempts || v.error || (v.breaker && v.breaker !== 'closed')).map((v) => h('tr', {},
    h('td', {}, v.sidecar), h('td', {}, v.admin),
    h('td', {class: v.breaker === 'open' ? 'bad' : ''}, v.error ? '-' : (v.breaker || 'none')),
    num('attempts', v.attempts, String(v.attempts)), h('td', {}, v.error ? '-' : String(v.revision)), h('td', {class: 'bad'}, v.error || '')));
  return table('sidecars', ['Sidecar', 'Admin', 'Circuit breaker', 'Attempts', 'Revision', 'Problem'], rows, 'No sidecar has called it yet.');
}

const policyFields = [
  ['resource', 'Resource'], ['balancer', 'Balancer'], ['requestTimeout', 'Request timeout'], ['perTryTimeout', 'Per try timeout'],
  ['attempts', 'Attempts'], ['retryOn', 'Retry on'], ['retryBudget', 'Retry budget'], ['circuitBreaker', 'Circuit breaker'],
  ['healthCheck', 'Health check'], ['rateLimit', 'Rate limit'], ['hedging', 'Hedging'], ['fallback', 'Fallback status'],
];

function policy(p) {
  if (!p.policy) return h('p', {class: 'empty'}, 'No sidecar has told its policy for this service.');
  const dl = h('dl', {class: 'policy'});
  for (const [k, label] of policyFields) {
    let v = p.policy[k];
    if (k === 'resource' && !v) v = 'none: the defaults';
    if (v === undefined || v === '' || v === 0 || (Array.isArray(v) && !v.length)) continue;
    dl.append(h('dt', {}, label), h('dd', {}, Array.isArray(v) ? v.join(', ') : String(v)));
  }
  return [dl, h('p', {class: 'note'}, `As sidecar ${p.policyBy} runs it.`)];
}

function routes(p) {
  const list = p.routes || [];
  const rows = list.map((rt) => h('tr', {}, h('td', {}, rt.route), h('td', {}, String(rt.rule) + (rt.name ? ` (${rt.name})` : '')),
    h('td', {}, rt.match), h('td', {}, (rt.backends || [p.name]).join(', ')), h('td', {}, (rt.filters || []).join(', ') || '-')));
  return table('routes', ['Route', 'Rule', 'Match', 'Backends', 'Filters'], rows, 'No route: requests go to its own instances.');
}

function resources(list, open) {
  if (!list.length) return h('p', {class: 'empty'}, 'No resource names it: the defaults apply.');
  return list.map((r) => h('details', {'data-ref': r.ref, open: open.has(r.ref)}, h('summary', {}, r.ref), h('pre', {class: 'yaml'}, r.yaml)));
}

function errors(p) {
  const rows = p.errors.map((e) => h('tr', {'data-reason': e.reason},
    h('td', {}, h('code', {}, e.reason)), num('count', e.count, String(e.count)), h('td', {}, String(e.status || '-')),
    h('td', {}, clock(e.last)), h('td', {}, e.sidecar), h('td', {}, e.path), h('td', {}, e.message)));
  return [h('p', {class: 'note'}, `Among the last ${p.scanned} requests to ${p.name} its callers' sidecars keep.`),
    table('errors', ['Reason', 'Count', 'Status', 'Last', 'Sidecar', 'Path', 'Message'], rows, 'No mesh error.')];
}

export function traceRows(list) {
  const rows = (list || []).map((t) => h('tr', {'data-trace': t.traceId, class: t.errors ? 'has-errors' : ''},
    h('td', {}, h('a', {class: 'trace-link', href: link('trace', t.traceId)}, t.traceId)),
    h('td', {}, `${t.rootService} ${t.rootName}`), num('spans', t.spans, String(t.spans)), h('td', {}, (t.services || []).join(', ')),
    num('errors', t.errors, String(t.errors)), num('duration', t.duration, dur(t.duration)), h('td', {}, clock(t.start))));
  return table('traces', ['Trace', 'Root', 'Spans', 'Services', 'Errors', 'Duration', 'Start'], rows, 'No trace held.');
}

