/* The web app's shared script: GOV.UK Frontend's components, the sign-in, and API calls.
 *
 * The API key lives in this tab's sessionStorage only (the same entry as /map's, so a person
 * signs in once per tab): it is sent as `Authorization: Bearer` to this app's own endpoints and
 * nowhere else, never in a URL or a cookie. Pages import { api, caller, onCaller } and redraw
 * when the caller changes; the server decides what each key may see and do.
 */
import { initAll } from '../vendor/govuk-frontend-6.6.0/dist/govuk/govuk-frontend.min.js';

const KEY_STORE = 'connectivity.apiKey';
const section = document.querySelector('.app-signin');
export const prefix = section ? section.dataset.prefix : '';
const roles = JSON.parse(document.getElementById('app-roles').textContent);
const boroughNames = JSON.parse((document.getElementById('app-boroughs') || {}).textContent || '{}');
const listeners = [];
let state = {key: null, who: null};

function storage() {
  try {
    return window.sessionStorage;
  } catch (e) {
    return null; // storage switched off: the sign-in lasts until the page is left
  }
}

/** An error the API answered: its problem document's detail, status and body. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `the server answered ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/**
 * A DOM element with attributes and children; strings become text nodes, nothing is parsed as HTML.
 * `attrs`: `class`, `text`, `hidden`, `dataset` (object), `style` (object; `--custom` properties
 * too), `on` (event -> handler) or `onclick`-style handlers, anything else an attribute (`true`
 * is an empty one); `null`, `undefined` and `false` are left out, of attributes and children.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'hidden') node.hidden = true;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'style') {
      for (const [property, setting] of Object.entries(value)) {
        if (property.startsWith('--')) node.style.setProperty(property, setting);
        else node.style[property] = setting;
      }
    } else if (key === 'on') {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Headers for a call to the API as the signed-in caller. */
export function authHeaders(extra = {}) {
  const headers = {Accept: 'application/json', ...extra};
  if (state.key) {
    headers.Authorization = `Bearer ${state.key}`;
  }
  return headers;
}

/** fetch() of an API path as the signed-in caller; the parsed JSON, or an ApiError. */
export async function api(path, options = {}) {
  const response = await fetch(prefix + path, {
    cache: 'no-store',
    ...options,
    headers: authHeaders(options.headers || {}),
  });
  const type = response.headers.get('content-type') || '';
  const body = type.includes('json') ? await response.json().catch(() => ({})) : await response.text();
  if (!response.ok) {
    throw new ApiError(response.status, typeof body === 'object' ? body : {detail: body});
  }
  return body;
}

/** Who is signed in ({role, borough_code, operator, label, key_id}), or null. */
export function caller() {
  return state.who;
}

/** Call `listener(who)` now and whenever the caller changes. */
export function onCaller(listener) {
  listeners.push(listener);
  listener(state.who);
}

export function boroughName(code) {
  return boroughNames[code] || code;
}

/** "borough Camden", "operator Openreach", "admin (GLA)". */
export function describe(who) {
  if (!who) {
    return 'nobody';
  }
  if (who.role === 'borough') {
    return `borough ${boroughName(who.borough_code)}`;
  }
  if (who.role === 'operator') {
    return who.operator ? `operator ${who.operator}` : 'operator (key bound to no operator)';
  }
  return who.role === 'admin' ? 'admin (GLA)' : String(who.role);
}

function render(error) {
  if (!section) {
    return;
  }
  const who = state.who;
  const line = section.querySelector('[data-signin-who]');
  line.textContent = who
    ? `Signed in as ${describe(who)}, key “${who.label}”: ${roles[who.role] || ''}.`
    : `Not signed in: ${roles['']}.`;
  section.querySelector('[data-signin-form]').hidden = Boolean(who);
  section.querySelector('[data-signout]').hidden = !who;
  const message = section.querySelector('[data-signin-error]');
  message.hidden = !error;
  message.textContent = error ? `Error: ${error}` : '';
  section.querySelector('#signin-key').classList.toggle('govuk-input--error', Boolean(error));
  section.classList.toggle('app-signin--in', Boolean(who));
}

function changed() {
  for (const listener of listeners) {
    listener(state.who);
  }
}

async function signIn(key, quiet = false) {
  try {
    const who = await fetch(`${prefix}/me`, {
      headers: {Accept: 'application/json', Authorization: `Bearer ${key}`},
      cache: 'no-store',
    }).then(async (r) => {
      const body = await r.json().catch(() => ({}));
      if (!r.ok) {
        throw new ApiError(r.status, body);
      }
      return body;
    });
    state = {key, who};
    storage()?.setItem(KEY_STORE, key);
    render();
  } catch (error) {
    state = {key: null, who: null};
    storage()?.removeItem(KEY_STORE);
    render(quiet ? null : error.status === 401 ? 'that key is not valid (unknown, expired or revoked)' : error.message);
  }
  changed();
}

function signOut() {
  state = {key: null, who: null};
  storage()?.removeItem(KEY_STORE);
  render();
  changed();
  section?.querySelector('#signin-key')?.focus();
}

if (section) {
  section.querySelector('[data-signin-form]').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = section.querySelector('#signin-key');
    const key = input.value.trim();
    input.value = '';
    if (key) {
      signIn(key);
    } else {
      render('enter an API key');
    }
  });
  section.querySelector('[data-signout]').addEventListener('click', signOut);
}

document.body.classList.add('govuk-frontend-supported', 'js-enabled');
initAll();
/** Resolves once the stored key (if any) has been checked: pages wait for it before their first fetch. */
export const ready = (async () => {
  const stored = storage()?.getItem(KEY_STORE);
  if (stored) {
    await signIn(stored, true);
  } else {
    render();
  }
})();
