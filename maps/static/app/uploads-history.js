/* /app/uploads: the earlier uploads the signed-in key may see (GET /uploads: a borough key its own
 * borough's, an admin every borough's), with their state and who made and applied them.
 */
import { api, boroughName, caller } from './app.js';
import { el, kindLabel, number } from './uploads-preview.js';

const $ = (selector) => document.querySelector(selector);
const when = (iso) => (iso ? new Date(iso).toLocaleString('en-GB', {dateStyle: 'medium', timeStyle: 'short'}) : '');

const TAGS = {previewed: 'blue', applied: 'green', rejected: 'red', failed: 'red', interrupted: 'orange'};

function historyRow(u, onOpen) {
  const c = u.counts || {};
  const rows = u.state === 'rejected' || u.state === 'failed'
    ? (u.message || '').slice(0, 160)
    : `${number(c.rows)} read: ${number(c.new)} new, ${number(c.changed)} changed, ${number(c.retired)} retired, ${number(c.invalid)} invalid`;
  const by = [`${u.created_by}, ${when(u.created_at)}`, u.applied_by ? `applied by ${u.applied_by}, ${when(u.applied_at)}` : ''];
  const open = ['previewed', 'applied'].includes(u.state)
    ? el('button', {type: 'button', class: 'govuk-button govuk-button--secondary app-small-button', text: 'Open',
      'aria-label': `Open upload ${u.id}`, onclick: () => onOpen(u.id)})
    : '';
  return el('tr', {class: 'govuk-table__row', 'data-upload': u.id},
    el('td', {class: 'govuk-table__cell govuk-table__cell--numeric', text: String(u.id)}),
    el('td', {class: 'govuk-table__cell app-cell-file', text: `${u.file_name}${u.dry_run ? ' (dry run)' : ''}`}),
    el('td', {class: 'govuk-table__cell', text: `${boroughName(u.borough_code)}: ${kindLabel(u.kind)}, ${u.mode}`}),
    el('td', {class: 'govuk-table__cell'}, el('strong', {class: `govuk-tag govuk-tag--${TAGS[u.state] || 'grey'}`, text: u.state})),
    el('td', {class: 'govuk-table__cell', text: rows}),
    el('td', {class: 'govuk-table__cell'}, ...by.filter(Boolean).map((line) => el('span', {class: 'app-line', text: line}))),
    el('td', {class: 'govuk-table__cell'}, open));
}

/** The latest 20 uploads the key may see, newest first; ``onOpen(id)`` shows one of them. */
export async function loadHistory(onOpen) {
  const who = caller();
  const note = $('[data-history-note]');
  if (!who || !['admin', 'borough'].includes(who.role)) {
    return;
  }
  try {
    const list = await api('/uploads?limit=20');
    $('[data-history-table]').hidden = list.length === 0;
    $('[data-history-rows]').replaceChildren(...list.map((u) => historyRow(u, onOpen)));
    const whose = who.role === 'admin' ? 'every borough' : boroughName(who.borough_code);
    const many = list.length === 20 ? 'The latest 20 uploads' : `All ${list.length} uploads`;
    note.textContent = list.length === 0 ? `No uploads yet for ${whose}.`
      : list.length === 1 ? `The only upload of ${whose}.` : `${many} of ${whose}, newest first.`;
  } catch (error) {
    note.textContent = `The list of uploads could not be read: ${error.message}.`;
  }
}
