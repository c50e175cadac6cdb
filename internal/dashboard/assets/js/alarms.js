// Alarms: every AlertRule by state (firing, pending, resolved, then
// inactive), with its condition, the last value, since when, and its
// history of changes.
import {h, problem, replace, section, table} from './dom.js';
import {alertValue as value, clock, stamp} from './format.js';
import {alarmBadge, link, stream} from './app.js';

const order = ['firing', 'pending', 'resolved', 'inactive'];

export function mount(main) {
  const summary = h('p', {class: 'summary'}, 'Loading…');
  const body = h('div', {id: 'alarms'});
  main.append(h('h1', {}, 'Alarms'), summary, body);
  return stream('alarms', {}, (a) => {
    const list = a.alerts || [];
    const by = Object.fromEntries(order.map((s) => [s, list.filter((x) => x.state === s)]));
    alarmBadge(by.firing.length, by.pending.length);
    replace(summary, `${list.length} rules: ${order.map((s) => `${by[s].length} ${s}`).join(', ')}. As of ${clock(a.time)}.`);
    if (!list.length) {
      replace(body, h('p', {class: 'empty'}, 'No AlertRule: weft apply -f a file with one (docs/observability.md, Alarms).'));
      return;
    }
    replace(body, order.filter((s) => by[s].length).map((s) => section(s[0].toUpperCase() + s.slice(1), 'alarms-' + s, rules(by[s]))));
  }, (msg) => replace(body, problem(msg)));
}


function target(a) {
  if (a.edge) return [h('a', {href: link('service', a.edge.source)}, a.edge.source), ' → ', h('a', {href: link('service', a.edge.destination)}, a.edge.destination)];
  return h('a', {href: link('service', a.service)}, a.service);
}

function rules(list) {
  return list.map((a) => h('div', {class: 'rule alarm-' + a.state, 'data-rule': a.rule},
    h('h3', {}, a.rule, ' ', h('span', {class: 'tag ' + a.state}, a.state), ' ', h('span', {class: 'tag'}, a.severity)),
    a.summary ? h('p', {}, a.summary) : null,
    h('dl', {class: 'policy'},
      h('dt', {}, 'Target'), h('dd', {}, target(a)),
      h('dt', {}, 'Condition'), h('dd', {}, `${a.metric} ${a.op === 'below' ? '<' : '>'} ${value(a.metric, a.threshold)} over ${a.window}` + (a.for && a.for !== '0s' ? `, for ${a.for}` : '')),
      h('dt', {}, 'Value'), h('dd', {'data-field': 'value', 'data-value': a.value ?? ''}, value(a.metric, a.value)),
      h('dt', {}, 'Since'), h('dd', {}, stamp(a.since)),
      h('dt', {}, 'Evaluated'), h('dd', {}, stamp(a.evaluated))),
    table('history', ['Time', 'From', 'To', 'Value'], (a.history || []).slice().reverse().map((t) => h('tr', {},
      h('td', {}, stamp(t.time)), h('td', {}, t.from), h('td', {}, t.to), h('td', {}, value(a.metric, t.value)))), 'No change yet.')));
}
