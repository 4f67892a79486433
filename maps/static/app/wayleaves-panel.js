/* /app/wayleaves: shared helpers (DOM building, dates, status names) and a wayleave's details panel.
 *
 * The panel shows every field the key may see, the status change with a note (for the keys that
 * may make it), and the wayleave's status history (GET /wayleaves/{id}/history) and edits of its
 * details (GET /wayleaves/{id}/changes), fetched with the key when the panel is first opened.
 * Every value is set as text.
 */
import { api, el } from './app.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
export const STATUSES = JSON.parse(document.getElementById('wayleave-statuses').textContent);
const LABELS = Object.fromEntries(STATUSES.map((s) => [s.code, s.label]));

/** The readable name of a status code ("Survey scheduled"). */
export function statusLabel(code) {
  return LABELS[code] || code || '–';
}

export { el };

/** An SVG element with attributes and children. */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

/** A small warning triangle (decorative: the text next to it says "Overdue"). */
export function warningIcon() {
  return svg('svg', {class: 'app-wl-icon', viewBox: '0 0 20 20', width: 18, height: 18, 'aria-hidden': 'true', focusable: 'false'},
    svg('path', {d: 'M10 1.5 19 18H1z', fill: '#d4351c'}),
    svg('path', {d: 'M9 7h2v5.5H9zM9 14h2v2H9z', fill: '#fff'}));
}

/** "3 Mar 2026" from "2026-03-03"; "–" for none. */
export function day(value) {
  if (!value) return '–';
  const [y, m, d] = value.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d)).toLocaleDateString('en-GB', {day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC'});
}

/** "3 Mar 2026, 14:02" (London time) from an ISO date-time. */
export function when(value) {
  if (!value) return '–';
  return new Date(value).toLocaleString('en-GB', {day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: 'Europe/London'});
}

/** Today's London date as YYYY-MM-DD. */
export function today() {
  return new Intl.DateTimeFormat('en-CA', {timeZone: 'Europe/London'}).format(new Date());
}

/** Whole days from `from` to `to` (both YYYY-MM-DD). */
export function daysBetween(from, to) {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86400000);
}

export function plural(n, one, many = `${one}s`) {
  return `${n.toLocaleString('en-GB')} ${n === 1 ? one : many}`;
}

const FIELD_NAMES = {
  template: 'Template', template_version: 'Template version', reference: 'Borough reference',
  operator_reference: 'Operator reference', expires_on: 'Expires on', notes: 'Notes',
  contact_name: 'Contact name', contact_email: 'Contact email', contact_phone: 'Contact phone',
  status: 'Status', resume_status: 'Returns to', requested_on: 'Requested on', surveyed_on: 'Surveyed on',
  terms_issued_on: 'Terms issued on', signed_on: 'Signed on', live_on: 'Live on', version: 'Version',
};

/** The name a person reads for a field of a wayleave. */
export function fieldName(field) {
  return FIELD_NAMES[field] || field;
}

/** A field's value as text (statuses by name, dates readable). */
export function fieldText(field, value) {
  if (value === null || value === undefined || value === '') return '–';
  if (field === 'status' || field === 'resume_status') return statusLabel(value);
  if (field.endsWith('_on') && /^\d{4}-\d{2}-\d{2}$/.test(value)) return day(value);
  return String(value);
}

function facts(w) {
  const rows = [
    ['Site', `${w.site_name} (site ${w.site_id})`],
    ['Assets', w.asset_ids.length ? w.asset_ids.join(', ') : '–'],
    ['Template', [w.template, w.template_version].filter(Boolean).join(', ')],
    ['Borough reference', w.reference || '–'],
    ['Operator reference', w.operator_reference || '–'],
    ['Key dates', ['requested_on', 'surveyed_on', 'terms_issued_on', 'signed_on', 'live_on']
      .filter((f) => w[f]).map((f) => `${fieldName(f).replace(' on', '')} ${day(w[f])}`).join('; ') || 'none yet'],
    ['Expires on', day(w.expires_on)],
    ['Version', String(w.version)],
    ['Created', `${when(w.created_at)}${w.created_by ? ` by ${w.created_by}` : ''}`],
  ];
  if (w.status === 'on_hold') rows.splice(2, 0, ['Returns to', statusLabel(w.resume_status)]);
  if ('notes' in w) rows.push(['Notes', w.notes || '–']);
  return el('dl', {class: 'govuk-summary-list govuk-summary-list--no-border app-wl-facts'},
    rows.map(([key, value]) => el('div', {class: 'govuk-summary-list__row'},
      el('dt', {class: 'govuk-summary-list__key'}, key), el('dd', {class: 'govuk-summary-list__value'}, value))));
}

function table(caption, head, body) {
  return el('table', {class: 'govuk-table app-wl-small-table'},
    el('caption', {class: 'govuk-table__caption govuk-visually-hidden'}, caption),
    el('thead', {class: 'govuk-table__head'}, el('tr', {class: 'govuk-table__row'},
      head.map((h) => el('th', {scope: 'col', class: 'govuk-table__header'}, h)))),
    el('tbody', {class: 'govuk-table__body'}, body.map((cells) => el('tr', {class: 'govuk-table__row'},
      cells.map((c) => el('td', {class: 'govuk-table__cell'}, c))))));
}

function historyTable(w, events) {
  const notes = events.some((e) => 'note' in e);
  const by = events.some((e) => 'by' in e);
  const head = ['When', 'From', 'To', ...(notes ? ['Note'] : []), ...(by ? ['By'] : [])];
  const body = events.map((e) => [when(e.at), e.from_status ? statusLabel(e.from_status) : 'created', statusLabel(e.to_status),
    ...(notes ? [e.note || '–'] : []), ...(by ? [e.by || '–'] : [])]);
  return table(`Status history of wayleave ${w.id}`, head, body);
}

function changesTable(w, edits) {
  if (!edits.length) return el('p', {class: 'govuk-body-s'}, 'No edits of the details yet.');
  const by = edits.some((e) => 'by' in e);
  const head = ['Version', 'When', ...(by ? ['By'] : []), 'What changed'];
  const body = edits.map((e) => [String(e.version), when(e.at), ...(by ? [e.by || '–'] : []),
    el('ul', {class: 'govuk-list govuk-body-s app-wl-changes'}, e.fields.map((f) =>
      el('li', {}, `${fieldName(f.field)}: ${fieldText(f.field, f.old)} → ${fieldText(f.field, f.new)}`)))]);
  return table(`Edits of wayleave ${w.id}'s details`, head, body);
}

function noteForm(w, move, invalid) {
  const id = `panel-${w.id}`;
  const error = el('p', {class: 'govuk-error-message', id: `${id}-to-error`, hidden: true});
  const radios = el('div', {class: 'govuk-radios govuk-radios--small', 'data-module': 'govuk-radios'},
    w.allowed_next.map((code) => el('div', {class: 'govuk-radios__item'},
      el('input', {class: 'govuk-radios__input', type: 'radio', name: `${id}-to`, id: `${id}-to-${code}`, value: code}),
      el('label', {class: 'govuk-label govuk-radios__label', for: `${id}-to-${code}`}, statusLabel(code)))));
  const group = el('div', {class: 'govuk-form-group'},
    el('fieldset', {class: 'govuk-fieldset', 'aria-describedby': `${id}-to-error`},
      el('legend', {class: 'govuk-fieldset__legend govuk-fieldset__legend--s'}, `Move it from ${statusLabel(w.status)} to`),
      error, radios));
  const note = el('textarea', {class: 'govuk-textarea', id: `${id}-note`, name: 'note', rows: 2, maxlength: 10000});
  const form = el('form', {class: 'app-wl-note-form', novalidate: true},
    group,
    el('div', {class: 'govuk-form-group'},
      el('label', {class: 'govuk-label govuk-label--s', for: `${id}-note`}, 'Note (optional)'),
      el('div', {class: 'govuk-hint', id: `${id}-note-hint`}, 'Why, or what happened: shown to admins and the borough.'),
      note),
    el('button', {type: 'submit', class: 'govuk-button', 'data-module': 'govuk-button'}, 'Change status'));
  note.setAttribute('aria-describedby', `${id}-note-hint`);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const chosen = form.querySelector('input[type=radio]:checked');
    group.classList.toggle('govuk-form-group--error', !chosen);
    error.hidden = Boolean(chosen);
    error.replaceChildren(el('span', {class: 'govuk-visually-hidden'}, 'Error: '), 'Choose the status to move it to');
    if (!chosen) {
      invalid(`${id}-to-${w.allowed_next[0]}`, `Choose the status to move wayleave ${w.id} to`);
      return;
    }
    move(w, chosen.value, note.value.trim(), `${id}-to-${chosen.value}`);
  });
  return form;
}

/** The details panel of wayleave `w`; `mayMove`: whether the key may change its status; `move(w, to, note, fieldId)`
 * changes it, `invalid(fieldId, message)` reports a missing choice. */
export function detailsPanel(w, {mayMove, move, invalid}) {
  const history = el('div', {}, el('p', {class: 'govuk-body-s'}, 'Loading its history…'));
  const edits = el('div', {}, el('p', {class: 'govuk-body-s'}, 'Loading its edits…'));
  const panel = el('div', {class: 'app-wl-panel'},
    el('h4', {class: 'govuk-heading-s', tabindex: '-1'}, `Wayleave ${w.id}: ${w.site_name}`),
    el('div', {class: 'app-wl-panel-grid'},
      el('div', {}, facts(w)),
      mayMove && w.allowed_next.length ? el('div', {}, noteForm(w, move, invalid)) : null),
    el('h5', {class: 'govuk-heading-s'}, 'Status history'), history,
    el('h5', {class: 'govuk-heading-s'}, 'Edits of the details'), edits,
    el('p', {class: 'govuk-body-s'}, 'The same from the API, with your key: ',
      el('code', {}, `GET /wayleaves/${w.id}/history`), ' and ', el('code', {}, `GET /wayleaves/${w.id}/changes`), '.'));
  Promise.all([api(`/wayleaves/${w.id}/history`), api(`/wayleaves/${w.id}/changes`)]).then(
    ([events, changes]) => {
      history.replaceChildren(historyTable(w, events));
      edits.replaceChildren(changesTable(w, changes));
    },
    (error) => history.replaceChildren(el('p', {class: 'govuk-body-s'}, `Its history could not be loaded: ${error.message}`)),
  );
  return panel;
}
