/* /app/wayleaves: the wayleave board by status, its filters, the status changes the key may make,
 * each wayleave's details and history, and the KPIs.
 *
 * Wayleaves need a key: without one the page says so. The rows come from GET /wayleaves as the
 * signed-in key may see them (operators their own; contacts and notes only for admins and the
 * owning borough: the server removes them). A status change sends the version the page read
 * (If-Match and expected_version), as the API asks; when the wayleave changed in between, the
 * API's 409 is shown with what changed and a way to reload. The filters live in the query string,
 * so a link shows a colleague the same board (several statuses comma-separated, status=a,b, as the
 * API takes them).
 *
 * Nothing is cut off silently: GET /wayleaves/counts gives the totals per status (the cards and the
 * headings), and each status's table loads its first page, then "Show more" loads the next one
 * (keyset paging, after=the last id). The page size is PAGE, or per_page=N in the page's URL.
 */
import { api, ApiError, authHeaders, boroughName, describe, onCaller, prefix, ready } from './app.js';
import { drawKpis } from './wayleaves-kpis.js';
import {
  STATUSES, day, daysBetween, detailsPanel, el, fieldName, fieldText, plural, statusLabel, today, warningIcon,
} from './wayleaves-panel.js';

const $ = (selector, root = document) => root.querySelector(selector);
const form = $('[data-filters]');
const FILTERS = ['borough', 'operator', 'status', 'overdue'];
const PAGE = 100;
/** The API's largest page, so the most the CSV download holds. */
const CSV_LIMIT = 10_000;
const perPage = Math.min(1000, Math.max(1, Number.parseInt(new URLSearchParams(location.search).get('per_page'), 10) || PAGE));
const GROUPS = [
  ['main', 'Main route', 'ol'],
  ['code', 'Electronic Communications Code route', 'ol'],
  ['other', 'Paused or closed', 'ul'],
];
/** The fields compared when a change is refused because the wayleave changed meanwhile. */
const COMPARED = ['status', 'resume_status', 'template', 'template_version', 'reference', 'operator_reference',
  'expires_on', 'requested_on', 'surveyed_on', 'terms_issued_on', 'signed_on', 'live_on', 'notes',
  'contact_name', 'contact_email', 'contact_phone'];
let who = null;
let rows = [];
/** code -> {rows, total, overdue, loading}: the loaded pages of each status, and its totals. */
let pages = {};
let counts = null;
let loading = 0;
let generation = 0;
const open = new Set();

/** Whether the signed-in key may change this wayleave's status (the API's rule: admins, its borough). */
function mayMove(w) {
  return who?.role === 'admin' || (who?.role === 'borough' && who.borough_code === w.borough_code);
}

function roleLine() {
  if (who.role === 'admin') {
    return `Signed in as ${describe(who)}: you see every wayleave with its contacts and notes, and may change the status of any of them.`;
  }
  if (who.role === 'borough') {
    const name = boroughName(who.borough_code);
    return `Signed in as ${describe(who)}: you see every borough's wayleaves, the contacts and notes of ${name}'s only, and may change the status of ${name}'s wayleaves.`;
  }
  if (who.role === 'operator' && who.operator) {
    return `Signed in as ${describe(who)}: you see only ${who.operator}'s wayleaves, without contacts or notes. Their status is changed by the borough or the GLA.`;
  }
  return `Signed in as ${describe(who)}: an operator key sees only its operator's wayleaves, and this one is bound to none, so it sees no wayleaves. Ask the GLA team to bind it to your operator (connectivity wayleaves bind-key).`;
}

// Filters and the URL ----------------------------------------------------------------------------------
function addOperator(name) {
  const select = form.elements.operator;
  if (name && ![...select.options].some((o) => o.value === name)) select.append(el('option', {value: name}, name));
}

function fromUrl() {
  const params = new URLSearchParams(location.search);
  addOperator(params.get('operator'));
  const statuses = new Set((params.get('status') || '').split(',').filter(Boolean));
  for (const box of statusBoxes()) box.checked = statuses.has(box.value);
  for (const name of FILTERS.filter((n) => n !== 'status')) {
    const field = form.elements[name];
    if (field.type === 'checkbox') field.checked = params.get(name) === 'true';
    else field.value = params.get(name) || '';
  }
}

function statusBoxes() {
  return [...form.querySelectorAll('[data-status-filter] input[type=checkbox]')];
}

/** The filters as the API's query: several statuses comma-separated in one parameter. */
function filters() {
  const params = new URLSearchParams();
  for (const name of FILTERS) {
    if (name === 'status') {
      const ticked = statusBoxes().filter((b) => b.checked).map((b) => b.value);
      if (ticked.length) params.set('status', ticked.join(','));
      continue;
    }
    const field = form.elements[name];
    if (field.type === 'checkbox' ? field.checked : field.value) params.set(name, field.type === 'checkbox' ? 'true' : field.value);
  }
  return params;
}

/** The page's own query: the filters, and per_page when the URL set it. */
function pageQuery() {
  const params = filters();
  const size = new URLSearchParams(location.search).get('per_page');
  if (size) params.set('per_page', size);
  return params.toString();
}

// Messages ---------------------------------------------------------------------------------------------
function clearMessages() {
  $('[data-error-summary]').hidden = true;
  $('[data-done]').hidden = true;
  for (const node of document.querySelectorAll('.app-wl-move .govuk-form-group--error')) node.classList.remove('govuk-form-group--error');
  for (const node of document.querySelectorAll('.app-wl-move .govuk-error-message')) node.remove();
}

/** The error summary: `text` (string or nodes), `links` [{href, text}], `reload` to offer a reload. */
function showProblem(text, links = [], reload = false) {
  const summary = $('[data-error-summary]');
  $('[data-error-text]', summary).replaceChildren(...[text].flat().map((t) => (t instanceof Node ? t : el('p', {class: 'govuk-body'}, t))));
  $('[data-error-list]', summary).replaceChildren(...links.map((l) => el('li', {}, el('a', {href: l.href}, l.text))));
  $('[data-reload]', summary).hidden = !reload;
  summary.hidden = false;
  summary.focus();
}

/** A form's field is missing: the summary links to it (and the field says so next to it). */
function invalid(fieldId, message) {
  showProblem(message, [{href: `#${fieldId}`, text: message}]);
}

function done(text) {
  $('[data-done-text]').textContent = text;
  $('[data-done]').hidden = false;
  $('[data-done]').focus();
}

function rowError(id, message) {
  const group = document.getElementById(`move-${id}`)?.closest('.govuk-form-group');
  if (!group) return;
  group.classList.add('govuk-form-group--error');
  const error = el('p', {class: 'govuk-error-message', id: `move-${id}-error`},
    el('span', {class: 'govuk-visually-hidden'}, 'Error: '), message);
  group.querySelector('label').after(error);
  document.getElementById(`move-${id}`).setAttribute('aria-describedby', `move-${id}-error`);
}

// Status changes ---------------------------------------------------------------------------------------
async function move(w, to, note, fieldId) {
  clearMessages();
  try {
    const moved = await api(`/wayleaves/${w.id}/transitions`, {
      method: 'POST',
      headers: {'Content-Type': 'application/json', 'If-Match': `"${w.version}"`},
      body: JSON.stringify({to, note: note || null, expected_version: w.version}),
    });
    open.delete(w.id);
    await load(false);
    const left = rows.some((r) => r.id === w.id) ? '' : ' It no longer matches the filters, so it has left the board.';
    done(`Wayleave ${w.id} “${w.site_name}” moved from ${statusLabel(w.status)} to ${statusLabel(moved.status)} (now version ${moved.version}).${left}`);
    loadKpis();
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      await refused(w, to, error, fieldId);
    } else {
      rowError(w.id, `Not moved: ${error.message}`);
      showProblem(`Wayleave ${w.id} was not moved to ${statusLabel(to)}: ${error.message}`, [{href: `#${fieldId}`, text: `Wayleave ${w.id}: ${error.message}`}]);
    }
  }
}

/** A 409: say what changed since the page read the wayleave (or why the rules refuse) and offer a reload. */
async function refused(w, to, error, fieldId) {
  let now = null;
  try {
    now = await api(`/wayleaves/${w.id}`);
  } catch (e) {
    // gone or no longer visible: the message below says so
  }
  const changes = now ? COMPARED.filter((f) => (w[f] ?? null) !== (now[f] ?? null)) : [];
  const texts = [];
  if (!now) {
    texts.push(`Wayleave ${w.id} “${w.site_name}” could not be read again: ${error.message}. Your change to ${statusLabel(to)} was not made.`);
  } else if (now.version !== w.version) {
    texts.push(`Wayleave ${w.id} “${w.site_name}” changed since you loaded the board: it is now at version ${now.version} (you loaded version ${w.version}), so your change to ${statusLabel(to)} was not made. What changed:`);
    texts.push(el('ul', {class: 'govuk-list govuk-list--bullet', 'data-changed': ''}, changes.length
      ? changes.map((f) => el('li', {}, `${fieldName(f)}: ${fieldText(f, w[f])} → ${fieldText(f, now[f])}`))
      : [el('li', {}, 'details you may not see (contacts or notes)')]));
    texts.push('Reload the board to see it as it is now, then choose again.');
  } else {
    texts.push(`Wayleave ${w.id} “${w.site_name}” cannot move to ${statusLabel(to)}: ${error.message}.`);
  }
  rowError(w.id, now && now.version !== w.version ? 'Not moved: it changed since you loaded the board' : 'Not moved');
  showProblem(texts, [{href: `#${fieldId}`, text: `Wayleave ${w.id}: not moved to ${statusLabel(to)}`}], true);
}

// The board --------------------------------------------------------------------------------------------
function dueCell(w) {
  if (w.overdue) {
    const late = daysBetween(w.due_on, today());
    return el('span', {class: 'app-wl-overdue'}, warningIcon(), el('strong', {}, 'Overdue'),
      ` by ${plural(late, 'day')}: due ${day(w.due_on)}`);
  }
  const parts = [w.due_on ? `Due ${day(w.due_on)}` : 'No deadline'];
  if (w.next_chase_on) parts.push(el('br'), el('span', {class: 'app-wl-muted'}, `Chase the landlord by ${day(w.next_chase_on)}`));
  return el('span', {}, ...parts);
}

function contactCell(w) {
  if (!('contact_name' in w)) return el('span', {class: 'app-wl-muted'}, 'Not shown to your key');
  const parts = [w.contact_name, w.contact_email, w.contact_phone].filter(Boolean);
  if (!parts.length) return '–';
  return el('span', {class: 'app-wl-contact'}, w.contact_name || '',
    w.contact_email ? [el('br'), el('a', {class: 'govuk-link', href: `mailto:${w.contact_email}`}, w.contact_email)] : null,
    w.contact_phone ? [el('br'), w.contact_phone] : null);
}

function moveCell(w) {
  if (!w.allowed_next.length) return el('span', {class: 'app-wl-muted'}, 'Final status: no change possible');
  if (!mayMove(w)) {
    return el('span', {class: 'app-wl-muted'}, `Only admins and ${boroughName(w.borough_code)}'s borough keys may change it`);
  }
  const id = `move-${w.id}`;
  const select = el('select', {class: 'govuk-select app-wl-select', id, name: 'to'},
    el('option', {value: ''}, 'Choose…'), w.allowed_next.map((code) => el('option', {value: code}, statusLabel(code))));
  const cell = el('form', {class: 'app-wl-move', novalidate: true},
    el('div', {class: 'govuk-form-group'},
      el('label', {class: 'govuk-label app-wl-move-label', for: id}, 'Move to', el('span', {class: 'govuk-visually-hidden'}, ` (wayleave ${w.id})`)),
      el('div', {class: 'app-wl-move-row'}, select,
        el('button', {type: 'submit', class: 'govuk-button govuk-button--secondary app-wl-move-button'},
          'Move', el('span', {class: 'govuk-visually-hidden'}, ` wayleave ${w.id}`)))));
  cell.addEventListener('submit', (event) => {
    event.preventDefault();
    clearMessages();
    if (!select.value) {
      rowError(w.id, 'Choose the status to move it to');
      invalid(id, `Choose the status to move wayleave ${w.id} to`);
      return;
    }
    move(w, select.value, '', id);
  });
  return cell;
}

function toggle(w, button, detailRow) {
  const opening = detailRow.hidden;
  if (opening && !detailRow.firstChild.firstChild) {
    detailRow.firstChild.append(detailsPanel(w, {mayMove: mayMove(w), move, invalid}));
  }
  detailRow.hidden = !opening;
  button.setAttribute('aria-expanded', String(opening));
  button.firstChild.textContent = opening ? 'Hide details' : 'Details and history';
  if (opening) open.add(w.id);
  else open.delete(w.id);
  if (opening) detailRow.querySelector('h4').focus();
}

function rowsOf(w, columns) {
  const panelId = `details-${w.id}`;
  const button = el('button', {type: 'button', class: 'govuk-button govuk-button--secondary app-wl-details-button',
    'aria-expanded': 'false', 'aria-controls': panelId}, 'Details and history', el('span', {class: 'govuk-visually-hidden'}, ` of wayleave ${w.id}`));
  const refs = [`Wayleave ${w.id}`, w.reference, w.operator_reference && `operator ref. ${w.operator_reference}`].filter(Boolean).join(' · ');
  const cells = {
    wayleave: [el('strong', {}, w.site_name), el('br'), el('span', {class: 'app-wl-muted'}, refs), el('br'), button],
    borough: boroughName(w.borough_code),
    operator: w.operator,
    days: [el('strong', {}, plural(w.days_in_status, 'day')), el('br'),
      el('span', {class: 'app-wl-muted'}, `${w.working_days_in_status} working, since ${day(w.status_since.slice(0, 10))}`)],
    due: dueCell(w),
    contact: contactCell(w),
    move: moveCell(w),
  };
  const row = el('tr', {class: `govuk-table__row${w.overdue ? ' app-wl-row-overdue' : ''}`, 'data-wayleave': w.id},
    columns.map(([key]) => el(key === 'wayleave' ? 'th' : 'td', {class: key === 'wayleave' ? 'govuk-table__header' : 'govuk-table__cell', ...(key === 'wayleave' ? {scope: 'row'} : {})}, cells[key])));
  const detailRow = el('tr', {class: 'app-wl-details-row', id: panelId, hidden: true}, el('td', {colspan: columns.length}));
  button.addEventListener('click', () => toggle(w, button, detailRow));
  if (open.has(w.id)) toggle(w, button, detailRow);
  return [row, detailRow];
}

function columns() {
  const list = [['wayleave', 'Wayleave'], ['borough', 'Borough'], ['operator', 'Operator'], ['days', 'In status'], ['due', 'Due']];
  if (who.role === 'admin' || who.role === 'borough') list.push(['contact', 'Contact']);
  list.push(['move', 'Change status']);
  return list;
}

function board(byStatus) {
  return GROUPS.map(([group, title, tag]) => el('div', {class: `app-wl-lane app-wl-lane--${group}`},
    el('h3', {class: 'govuk-heading-s'}, title),
    el(tag, {class: 'app-wl-cards'}, STATUSES.filter((s) => s.group === group).map((s) => {
      const {total, overdue: late} = byStatus[s.code] || {total: 0, overdue: 0};
      const body = [el('span', {class: 'app-wl-card-name'}, s.label), el('span', {class: 'app-wl-card-count'}, total.toLocaleString('en-GB')),
        late ? el('span', {class: 'app-wl-card-late'}, warningIcon(), `${late.toLocaleString('en-GB')} overdue`) : null];
      return el('li', {class: `app-wl-card${total ? '' : ' app-wl-card--empty'}`, 'data-status-card': s.code},
        total ? el('a', {class: 'govuk-link app-wl-card-link', href: `#group-${s.code}`}, ...body) : el('span', {class: 'app-wl-card-link'}, ...body));
    }))));
}

/** Under a status's table: how many are shown of how many, and a button for the next page. */
function moreOf(s, state) {
  const left = state.total - state.rows.length;
  const line = el('p', {class: 'govuk-body-s app-wl-muted', 'data-shown': s.code},
    `Showing ${state.rows.length.toLocaleString('en-GB')} of ${plural(state.total, 'wayleave')}${left > 0 ? `: ${left.toLocaleString('en-GB')} more to load` : ''}.`);
  if (left <= 0) return el('div', {class: 'app-wl-more'}, line);
  const next = Math.min(left, perPage);
  const button = el('button', {type: 'button', class: 'govuk-button govuk-button--secondary', 'data-more': s.code,
    ...(state.loading ? {disabled: true, 'aria-disabled': 'true'} : {})},
  state.loading ? 'Loading…' : `Show ${next.toLocaleString('en-GB')} more`, el('span', {class: 'govuk-visually-hidden'}, ` ${s.label} wayleaves`));
  button.addEventListener('click', () => more(s.code));
  return el('div', {class: 'app-wl-more'}, line, button);
}

function countLine() {
  const total = counts?.total || 0;
  if (!total) return filters().toString() ? 'No wayleaves match the filters.' : 'There are no wayleaves your key may see.';
  const csv = total > CSV_LIMIT ? ` The CSV download holds the first ${CSV_LIMIT.toLocaleString('en-GB')} of them: narrow the filters for the rest.` : '';
  return `${plural(total, 'wayleave')} match, ${counts.overdue.toLocaleString('en-GB')} overdue: ${rows.length.toLocaleString('en-GB')} shown, by status below.${csv}`;
}

function draw() {
  rows = STATUSES.flatMap((s) => pages[s.code]?.rows || []);
  $('[data-count]').textContent = countLine();
  $('[data-board]').replaceChildren(...board(counts?.by_status || {}));
  const cols = columns();
  $('[data-groups]').replaceChildren(...STATUSES.filter((s) => pages[s.code]?.total).map((s) => {
    const state = pages[s.code];
    return el('section', {class: 'app-wl-group', 'data-group': s.code},
      el('h3', {class: 'govuk-heading-s', id: `group-${s.code}`, tabindex: '-1'},
        `${s.label}: ${plural(state.total, 'wayleave')}${state.overdue ? `, ${state.overdue.toLocaleString('en-GB')} overdue` : ''}`),
      el('table', {class: 'govuk-table app-wl-table', 'aria-labelledby': `group-${s.code}`},
        el('thead', {class: 'govuk-table__head'}, el('tr', {class: 'govuk-table__row'},
          cols.map(([key, title]) => el('th', {scope: 'col', class: `govuk-table__header app-wl-col-${key}`}, title)))),
        el('tbody', {class: 'govuk-table__body'}, state.rows.map((w) => rowsOf(w, cols)))),
      moreOf(s, state));
  }));
}

// Loading ----------------------------------------------------------------------------------------------
/** One page of a status's wayleaves under the filters, after the id `after`. */
function fetchPage(code, after) {
  const params = filters();
  params.set('status', code);
  params.set('limit', String(perPage));
  if (after) params.set('after', String(after));
  return api(`/wayleaves?${params}`);
}

/** The totals per status, then the first page of every status that has wayleaves (as many as were shown, on a reload). */
async function load(clear = true) {
  const token = ++loading;
  if (clear) clearMessages();
  $('[data-count]').textContent = 'Loading the wayleaves…';
  const before = pages;
  try {
    const found = await api(`/wayleaves/counts?${filters()}`);
    const codes = STATUSES.map((s) => s.code).filter((code) => found.by_status[code]?.total);
    const lists = await Promise.all(codes.map(async (code) => {
      const shown = Math.max(perPage, before[code]?.rows.length || 0);
      let list = await fetchPage(code);
      while (list.length < shown && list.length < found.by_status[code].total) {
        const next = await fetchPage(code, list[list.length - 1].id);
        if (!next.length) break;
        list = list.concat(next);
      }
      return list;
    }));
    if (token !== loading) return;
    counts = found;
    pages = Object.fromEntries(codes.map((code, i) => [code, {rows: lists[i], ...found.by_status[code], loading: false}]));
    draw();
  } catch (error) {
    if (token !== loading) return;
    counts = null;
    pages = {};
    draw();
    $('[data-count]').textContent = 'The wayleaves could not be loaded.';
    showProblem(`The wayleaves could not be loaded: ${error.message}`, [{href: '#filter-borough', text: 'Check the filters'}]);
  }
}

/** "Show more": the next page of one status, added under the rows already shown. */
async function more(code) {
  const state = pages[code];
  if (!state || state.loading) return;
  const token = loading;
  const first = state.rows.length;
  state.loading = true;
  draw();
  try {
    const next = await fetchPage(code, state.rows[state.rows.length - 1]?.id);
    if (token !== loading || pages[code] !== state) return;
    state.rows = state.rows.concat(next.filter((w) => !state.rows.some((r) => r.id === w.id)));
    if (!next.length) state.total = state.rows.length; // fewer than counted: some changed status meanwhile
  } catch (error) {
    if (token === loading) showProblem(`More ${statusLabel(code)} wayleaves could not be loaded: ${error.message}`);
  } finally {
    state.loading = false;
  }
  if (token !== loading) return;
  draw();
  const added = state.rows[first];
  const target = added && document.querySelector(`tr[data-wayleave="${added.id}"] th`);
  if (target) {
    target.tabIndex = -1;
    target.focus();
  } else {
    document.getElementById(`group-${code}`)?.focus();
  }
}

async function loadKpis() {
  const key = generation;
  try {
    const kpis = await api('/wayleaves/kpis');
    if (key !== generation) return;
    for (const g of kpis.by_operator) addOperator(g.operator);
    drawKpis(kpis, boroughName);
  } catch (error) {
    if (key === generation) $('[data-kpi-overall]').textContent = `The KPIs could not be loaded: ${error.message}`;
  }
}

async function download(path, name) {
  clearMessages();
  try {
    const response = await fetch(prefix + path, {cache: 'no-store', headers: authHeaders({Accept: 'text/csv'})});
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      throw new ApiError(response.status, problem);
    }
    const url = URL.createObjectURL(await response.blob());
    const link = el('a', {href: url, download: name, hidden: true});
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (error) {
    showProblem(`${name} could not be downloaded: ${error.message}`);
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const query = pageQuery();
  if (query !== location.search.slice(1)) history.pushState(null, '', `${location.pathname}${query ? `?${query}` : ''}`);
  load();
});
window.addEventListener('popstate', () => {
  fromUrl();
  if (who) load();
});
$('[data-reload]').addEventListener('click', () => {
  open.clear();
  load().then(() => $('#board-heading').focus());
  loadKpis();
});
$('[data-kpi-csv]').addEventListener('click', () => download('/wayleaves/kpis?format=csv', `wayleave-kpis-${today()}.csv`));
$('[data-list-csv]').addEventListener('click', () => {
  const params = filters();
  params.set('format', 'csv');
  params.set('limit', String(CSV_LIMIT));
  download(`/wayleaves?${params}`, `wayleaves-${today()}.csv`);
});

fromUrl();
await ready;
onCaller((next) => {
  who = next;
  $('[data-need-key]').hidden = Boolean(who);
  $('[data-signed-in]').hidden = !who;
  rows = [];
  pages = {};
  counts = null;
  open.clear();
  loading += 1; // answers for the previous key are dropped
  generation += 1;
  const operators = form.elements.operator;
  for (const option of [...operators.options].slice(1)) if (option.value !== operators.value) option.remove();
  clearMessages();
  for (const node of document.querySelectorAll('[data-board], [data-groups], [data-kpi]')) node.replaceChildren();
  $('[data-kpi-overall]').textContent = 'Loading the KPIs…';
  if (!who) return;
  $('[data-role-line]').textContent = roleLine();
  load();
  loadKpis();
});
