// Overview: every service with requests/s, success rate, p99, ready and
// total instances, and its last hour; a row is coloured while an alarm
// on it fires (or is pending).
import {h, num, problem, replace, section, table} from './dom.js';
import {clock, dur, pct, rate, spark} from './format.js';
import {alarmBadge, currentWindow, link, stream} from './app.js';

export function mount(main) {
  const summary = h('p', {class: 'summary', id: 'summary'}, 'Loading…');
  const body = h('div', {id: 'overview'});
  main.append(h('h1', {}, 'Services'), summary, body);
  return stream('overview', {window: currentWindow()}, (o) => {
    alarmBadge(o.firing, o.pending);
    replace(summary, `${o.services.length} services, ${o.edges.length} calls between them, over the last ${o.window}; `,
      o.firing ? h('a', {href: '#/alarms', class: 'firing'}, o.firing === 1 ? '1 alarm firing' : `${o.firing} alarms firing`) : 'no alarm firing',
      o.pending ? `, ${o.pending} pending` : '', `. As of ${clock(o.time)}.`);
    replace(body, section('', 'services', servicesTable(o)));
  }, (msg) => replace(body, problem(msg)));
}

export function servicesTable(o) {
  const rows = o.services.map((sv) => {
    const g = sv.golden;
    const cls = sv.alarm ? 'alarm-' + sv.alarm : '';
    return h('tr', {class: cls, 'data-service': sv.name},
      h('td', {}, h('a', {href: link('service', sv.name), class: 'service-link'}, sv.name),
        sv.alarm ? h('span', {class: 'tag ' + sv.alarm, title: (sv.alarms || []).join(', ')}, sv.alarm) : null),
      num('rps', g ? g.rps : null, g ? rate(g.rps) : '-'),
      num('successRate', g ? g.successRate : null, g ? pct(g.successRate) : '-'),
      num('p99', g ? g.p99 : null, g ? dur(g.p99) : '-'),
      num('ready', sv.ready, sv.kind ? `${sv.ready}/${sv.instances}` : '-'),
      num('requests', g ? g.requests : null, g ? String(g.requests) : '-'),
      h('td', {class: 'sparks'},
        spark(sv.spark.rps, 'rps', `${sv.name}: requests/s by the minute, last hour`),
        spark((sv.spark.successRate || []).map((v) => 1 - v), 'fail', `${sv.name}: failure rate by the minute, last hour`),
        spark(sv.spark.p99, 'p99', `${sv.name}: p99 by the minute, last hour`)),
      h('td', {}, sv.kind || 'gone'));
  });
  return table('services', ['Service', 'Requests/s', 'Success', 'P99', 'Ready', 'Requests', 'Last hour (rps, failures, p99)', 'Kind'], rows,
    'No service yet: start a sidecar, or weft demo.');
}
