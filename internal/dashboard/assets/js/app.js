// The dashboard's shell: the router (pages by the URL's hash, #/service/web),
// the live streams (server-sent events from /ui/events) and JSON reads
// (/ui/api/...). Each page module exports mount(main, route, ctx) and
// returns a function that unmounts it.
import * as overview from './overview.js';
import * as topology from './topology.js';
import * as service from './service.js';
import * as traces from './traces.js';
import * as trace from './trace.js';
import * as alarms from './alarms.js';
import * as live from './live.js';

const routes = {overview, topology, service, traces, trace, alarms, live};

// route reads the hash: #/service/web?window=5m -> {page, name, params}.
export function route() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const page = parts[0] || 'overview';
  return {page, name: parts.slice(1).join('/'), params: new URLSearchParams(query || '')};
}

// link is the hash of a page: link('service', 'web') -> #/service/web.
export function link(page, name, params) {
  let out = '#/' + (page === 'overview' ? '' : page);
  if (name) out += '/' + encodeURIComponent(name);
  const q = new URLSearchParams(params || {});
  const w = currentWindow();
  if (w !== '1m' && ['overview', 'topology', 'service'].includes(page) && !q.has('window')) q.set('window', w);
  const qs = q.toString();
  return qs ? out + '?' + qs : out;
}

export function currentWindow() {
  return route().params.get('window') || document.getElementById('window').value || '1m';
}

// getJSON reads /ui/api/PATH; a refusal throws with the API's message.
export async function getJSON(path) {
  const resp = await fetch('api/' + path, {headers: {Accept: 'application/json'}});
  const body = await resp.json().catch(() => ({error: resp.statusText}));
  if (!resp.ok) {
    setStatus('problem', 'bad');
    throw new Error(body.error || resp.statusText);
  }
  setStatus('read ' + new Date().toLocaleTimeString([], {hour12: false}), 'ok');
  return body;
}

const status = document.getElementById('status');

function setStatus(text, cls) {
  status.textContent = text;
  status.className = 'status ' + (cls || '');
}

// stream opens the event stream of a page and calls onUpdate with each
// new set of figures; it returns the function that closes it.
export function stream(page, params, onUpdate, onProblem) {
  const q = new URLSearchParams(params);
  q.set('page', page);
  const es = new EventSource('events?' + q.toString());
  es.addEventListener('update', (ev) => {
    const v = JSON.parse(ev.data);
    setStatus('live', 'ok');
    onUpdate(v);
  });
  es.addEventListener('problem', (ev) => {
    setStatus('problem', 'bad');
    onProblem(JSON.parse(ev.data).error);
  });
  es.addEventListener('error', () => {
    setStatus(es.readyState === EventSource.CLOSED ? 'stopped' : 'reconnecting', 'bad');
    if (es.readyState === EventSource.CLOSED) checkSession();
  });
  return () => es.close();
}

// The API token: given once (on the form, or as #/?token= in a link,
// as weft demo prints it), kept in a cookie the figures are sent with.
function keepToken(token) {
  document.cookie = `weft_token=${encodeURIComponent(token)}; Path=/ui/; SameSite=Strict${location.protocol === 'https:' ? '; Secure' : ''}`;
}

// checkSession asks whether the figures may be read; when the token is
// missing or wrong, it shows the form that asks for it.
async function checkSession() {
  const resp = await fetch('api/session', {headers: {Accept: 'application/json'}});
  if (resp.status !== 401) return true;
  const body = await resp.json().catch(() => ({}));
  const main = document.getElementById('main');
  const input = Object.assign(document.createElement('input'), {type: 'password', id: 'token', size: 40, autocomplete: 'off', required: true});
  const form = document.createElement('form');
  form.className = 'search';
  form.id = 'token-form';
  const label = document.createElement('label');
  label.append('API token ', input);
  const button = Object.assign(document.createElement('button'), {type: 'submit', textContent: 'Open'});
  form.append(label, button);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    keepToken(input.value.trim());
    mounted = '';
    start();
  });
  const msg = Object.assign(document.createElement('p'), {className: 'problem', textContent: body.error || 'This dashboard needs the API token.'});
  const title = Object.assign(document.createElement('h1'), {textContent: 'API token'});
  if (unmount) unmount();
  unmount = null;
  mounted = '';
  main.replaceChildren(title, msg, form);
  setStatus('needs the token', 'bad');
  return false;
}

// alarmBadge shows how many alarms fire in the navigation.
export function alarmBadge(firing, pending) {
  const b = document.getElementById('alarm-count');
  b.hidden = !(firing || pending);
  b.textContent = firing ? String(firing) : String(pending);
  b.className = 'badge ' + (firing ? 'firing' : 'pending');
}

let unmount = null;
let mounted = '';

function render() {
  const r = route();
  const key = location.hash;
  if (key === mounted) return;
  mounted = key;
  if (unmount) unmount();
  unmount = null;
  const w = r.params.get('window');
  if (w) document.getElementById('window').value = w;
  for (const a of document.querySelectorAll('#nav a')) {
    const on = a.dataset.page === r.page || (r.page === 'service' && a.dataset.page === 'topology') ||
      (r.page === 'trace' && a.dataset.page === 'traces');
    a.classList.toggle('on', on);
  }
  const main = document.getElementById('main');
  main.replaceChildren();
  const mod = routes[r.page];
  if (!mod) {
    main.append(Object.assign(document.createElement('p'), {className: 'problem', textContent: `No page ${r.page}.`}));
    return;
  }
  setStatus('loading', '');
  document.title = 'Weft: ' + r.page + (r.name ? ' ' + r.name : '');
  unmount = mod.mount(main, r) || null;
}

document.getElementById('window').addEventListener('change', (ev) => {
  const r = route();
  r.params.set('window', ev.target.value);
  location.hash = '#/' + (r.page === 'overview' ? '' : r.page) + (r.name ? '/' + encodeURIComponent(r.name) : '') + '?' + r.params.toString();
});
// start takes a token from the address, checks that the figures may
// be read, and shows the page.
async function start() {
  const r = route();
  if (r.params.has('token')) {
    keepToken(r.params.get('token'));
    r.params.delete('token');
    const qs = r.params.toString();
    history.replaceState(null, '', '#/' + (r.page === 'overview' ? '' : r.page) + (r.name ? '/' + encodeURIComponent(r.name) : '') + (qs ? '?' + qs : ''));
  }
  if (await checkSession()) render();
}

window.addEventListener('hashchange', () => (route().params.has('token') ? start() : render()));
start();
