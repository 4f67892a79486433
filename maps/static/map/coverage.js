/* Coverage on the map: one of the signed-in key's reports (GET /coverage/reports), its gaps
 * (gaps.geojson) as a layer, the share of each borough's households it covers as the borough
 * choropleth, and its priorities (priorities.csv) numbered, in order.
 */
import { api, authHeaders, caller, prefix } from '../app/app.js';
import { boroughName, date, el, number, parseCsv } from './util.js';
import { state } from './state.js';

const select = document.querySelector('[data-report]');
const hintLine = document.querySelector('[data-report-hint]');
const summaryLine = document.querySelector('[data-report-summary]');
const priorityList = document.querySelector('[data-report-priorities]');
const priorityHeading = document.querySelector('[data-report-priorities-heading]');
const KINDS = {street_furniture: 'Street furniture', public_building: 'Public building', duct: 'Duct'};

function areaWords(parameters) {
  const area = parameters.area || {};
  if (area.boroughs) {
    return area.boroughs.map(boroughName).join(', ');
  }
  return area.bbox ? 'a box' : 'a drawn area';
}

function optionText(r) {
  const when = date(r.created_at);
  const what = r.state === 'done' ? '' : ` (${r.state})`;
  return `Report ${r.id}: ${areaWords(r.parameters)}, ${number(r.parameters.gap_threshold)} m, ${when}${what}`;
}

/** Fill the report list for the signed-in key (or say why there is none). */
export async function listReports() {
  const who = caller();
  const keep = state.report;
  select.replaceChildren(el('option', {value: '', text: 'None'}));
  if (!who) {
    select.disabled = true;
    hintLine.textContent = 'Sign in to show one of your coverage reports: its gaps, the share covered in each borough and its priorities.';
    return [];
  }
  let reports = [];
  try {
    reports = await api('/coverage/reports?limit=50');
  } catch (error) {
    hintLine.textContent = `Your reports could not be listed (${error.message}).`;
    return [];
  }
  const done = reports.filter((r) => r.state === 'done');
  select.append(...done.map((r) => el('option', {value: String(r.id), text: optionText(r)})));
  select.disabled = !done.length;
  hintLine.textContent = done.length
    ? `${done.length} ${done.length === 1 ? 'report' : 'reports'} of ${who.role === 'admin' ? 'every key' : 'your key'}: choose one to see its gaps, the share covered and its priorities.`
    : 'Your key has no finished coverage report yet: request one on the Coverage page or with POST /coverage/reports.';
  if (keep && done.some((r) => String(r.id) === keep)) {
    select.value = keep;
  }
  return done;
}

async function priorities(id) {
  const response = await fetch(`${prefix}/coverage/reports/${id}/priorities.csv`, {headers: authHeaders({Accept: 'text/csv'}), cache: 'no-store'});
  return response.ok ? parseCsv(await response.text()) : [];
}

/** A report's layers and figures: {id, gapThreshold, shares, gaps (GeoJSON), priorities, text}. */
export async function loadReport(id) {
  const [report, gaps, ranked] = await Promise.all([
    api(`/coverage/reports/${id}`), api(`/coverage/reports/${id}/gaps.geojson`), priorities(id),
  ]);
  const p = report.parameters;
  const gap = p.gap_threshold;
  const rows = (report.summary && report.summary.boroughs) || [];
  const wholeRows = (report.summary && report.summary.whole_area) || [];
  // The figures at the gap distance (or the measured distance nearest to it).
  const measured = [...new Set(wholeRows.map((r) => r.threshold_m))];
  const at = measured.reduce((best, t) => (Math.abs(t - gap) < Math.abs(best - gap) ? t : best), measured[0]);
  const shares = {};
  for (const r of rows.filter((x) => x.threshold_m === at)) {
    const share = r.household_share !== null ? r.household_share : r.area_share;
    if (share !== null && share !== undefined && /^E09/.test(r.borough_code)) {
      shares[r.borough_code] = share;
    }
  }
  const whole = wholeRows.find((r) => r.threshold_m === at);
  const share = whole ? (whole.household_share !== null ? whole.household_share : whole.area_share) : null;
  const text = `Report ${id} (${areaWords(p)}): ${share === null || share === undefined ? 'no share' : `${number(share * 100, 1)}%`} of ` +
    `${whole && whole.household_share !== null ? 'households' : 'the area'} within ${number(at)} m of a usable asset; ` +
    `${number(gaps.features.length)} ${gaps.features.length === 1 ? 'gap' : 'gaps'}; ${number(ranked.length)} priorities.`;
  return {id, gapThreshold: gap, shares, gaps, priorities: ranked, text};
}

function priorityIcon(rank) {
  return L.divIcon({className: 'app-priority-marker', html: el('span', {class: 'app-priority', text: String(rank)}), iconSize: [26, 26], iconAnchor: [13, 13]});
}

/** The report's layers (not yet on the map): gaps, and the numbered priorities (drawn only: the list
 * in the panel is what a person, or a keyboard, chooses them from). */
export function reportLayers(report) {
  const gaps = L.geoJSON(report.gaps, {
    pane: 'coverage', interactive: false,
    style: {color: '#a50f15', weight: 1, opacity: 0.9, fill: true, fillColor: '#d7191c', fillOpacity: 0.45},
  });
  const markers = report.priorities.map((q) => L.marker([Number(q.lat), Number(q.lon)], {
    pane: 'priorities', icon: priorityIcon(q.rank), interactive: false, keyboard: false,
  }));
  return L.featureGroup([gaps, ...markers]);
}

/** The priorities as a list of buttons; `onPick(priority)` when one is chosen. */
export function listPriorities(report, onPick) {
  const ranked = report ? report.priorities : [];
  priorityList.replaceChildren(...ranked.map((q) => el('li', {class: 'app-map-report__priority'},
    el('button', {
      type: 'button', class: 'app-map-report__pick', dataset: {rank: q.rank, assetId: q.asset_id},
      on: {click: () => onPick(q)},
    }, el('span', {class: 'app-priority app-priority--legend', 'aria-hidden': 'true', text: String(q.rank)}),
    ` ${KINDS[q.kind] || q.kind}, asset ${q.asset_id}: adds ${number(Number(q.gain))} households`))));
  priorityList.hidden = !ranked.length;
  priorityHeading.hidden = !ranked.length;
}

export function setSummary(text) {
  summaryLine.textContent = text || '';
}

/** Call `handler(id)` when a report is chosen ("" for none). */
export function onReport(handler) {
  select.addEventListener('change', () => handler(select.value));
}
