// DOM helpers: every element is built with createElement and text
// nodes, never from HTML strings, so figures and names from the mesh
// can never become markup.

const SVG = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// h makes an HTML element: h('td', {class: 'num'}, 'text', child, ...).
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// s makes an SVG element.
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

// replace puts children in place of el's.
export function replace(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

// table makes a table in a scrolling box: head is a list of column
// titles, rows a list of tr elements.
export function table(cls, head, rows, empty) {
  const body = rows.length ? rows : [h('tr', {class: 'empty'}, h('td', {colspan: head.length}, empty || 'None.'))];
  return h('div', {class: 'scroll'},
    h('table', {class: cls},
      h('thead', {}, h('tr', {}, head.map((c) => h('th', {}, c)))),
      h('tbody', {}, body)));
}

// num is a table cell with a figure: its text for people, and its
// exact value in data-value (what the API said) under data-field.
export function num(field, value, text) {
  return h('td', {class: 'num', 'data-field': field, 'data-value': value === null || value === undefined ? '' : String(value)}, text);
}

// section is a titled block of a page.
export function section(title, id, ...children) {
  return h('section', {class: 'block', id}, h('h2', {}, title), ...children);
}

// problem is a message that something could not be shown.
export function problem(msg) {
  return h('p', {class: 'problem', role: 'alert'}, msg);
}
