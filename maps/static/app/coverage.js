/* /app/coverage: request a report (boroughs or a drawn area), follow its progress, read it.
 *
 * Everything shown comes from the API as the signed-in key may see it; text is set with
 * textContent, never parsed as HTML. The drawing works by pointer (click the map) and by keyboard
 * (move the focused map with the arrow keys, then add its centre).
 */
import { api, ApiError, authHeaders, boroughName, caller, el, onCaller, prefix, ready } from './app.js';

const $ = (selector, root = document) => root.querySelector(selector);
const form = $('[data-request-form]');
const corners = [];
let drawMap = null;
let drawn = null;
let reportMap = null;
let gapsLayer = null;
let polling = null;


const pct = (v) => (v === null || v === undefined ? '–' : `${(100 * v).toFixed(1)}%`);
const num = (v, digits = 0) =>
  v === null || v === undefined ? '–' : Number(v).toLocaleString('en-GB', {maximumFractionDigits: digits});

// The maps ------------------------------------------------------------------------------------------
function londonMap(id) {
  const map = L.map(id, {keyboard: true, zoomSnap: 0.5}).setView([51.5074, -0.1278], 10);
  L.control.scale({imperial: false}).addTo(map);
  api('/collections/boroughs/items?limit=100').then((data) => {
    L.geoJSON(data, {style: {color: '#505a5f', weight: 1, fill: false}, interactive: false}).addTo(map);
  }).catch(() => {});
  return map;
}

function ensureMap() {
  if (drawMap) return drawMap;
  drawMap = londonMap('draw-map');
  drawMap.on('click', (e) => addCorner(e.latlng));
  return drawMap;
}

function addCorner(latlng) {
  corners.push([latlng.lng, latlng.lat]);
  redraw();
}

function redraw() {
  if (drawn) drawn.remove();
  const latlngs = corners.map(([x, y]) => [y, x]);
  drawn = (corners.length > 2 ? L.polygon(latlngs) : L.polyline(latlngs)).addTo(drawMap);
  drawn.setStyle({color: '#12385b', weight: 3, fillOpacity: 0.15});
  $('[data-draw-status]').textContent =
    corners.length === 0 ? 'No corners yet.' : `${corners.length} corner${corners.length === 1 ? '' : 's'}` +
      (corners.length < 3 ? ': add at least three.' : ': the area is ready.');
}

function showArea(kind) {
  for (const part of document.querySelectorAll('[data-area-part]')) part.hidden = part.dataset.areaPart !== kind;
  if (kind === 'drawn') ensureMap().invalidateSize();
}

// The request ---------------------------------------------------------------------------------------
const FIELDS = {gap_threshold: 'gap-threshold', radius: 'radius', k: 'k', area: 'boroughs', kinds: 'kinds'};

function readForm() {
  const errors = [];
  const body = {};
  const area = form.querySelector('input[name=area]:checked').value;
  if (area === 'boroughs') {
    const codes = [...form.querySelectorAll('input[name=borough]:checked')].map((c) => c.value);
    if (!codes.length) errors.push(['boroughs', 'Choose at least one borough']);
    body.area = {boroughs: codes};
  } else {
    if (corners.length < 3) errors.push(['drawn', 'Draw an area with at least three corners']);
    body.area = {geometry: {type: 'Polygon', coordinates: [[...corners, corners[0]]]}, crs: 'EPSG:4326'};
  }
  for (const [name, id, low, high] of [['gap_threshold', 'gap-threshold', 1, 5000], ['radius', 'radius', 1, 5000], ['k', 'k', 0, 500]]) {
    const text = $(`#${id}`).value.trim();
    const value = Number(text);
    if (!/^[0-9]+(\.[0-9]+)?$/.test(text) || value < low || value > high || (name === 'k' && !Number.isInteger(value))) {
      errors.push([id, `${$(`label[for=${id}]`).textContent} must be a number from ${low} to ${num(high)}`]);
    } else {
      body[name] = value;
    }
  }
  body.kinds = [...form.querySelectorAll('input[name=kind]:checked')].map((c) => c.value);
  if (!body.kinds.length) errors.push(['kinds', 'Choose at least one kind of asset']);
  body.ready_now = $('#ready-now').checked;
  return {body, errors};
}

function showErrors(errors) {
  for (const node of form.querySelectorAll('.govuk-error-message')) node.hidden = true;
  for (const node of form.querySelectorAll('.govuk-form-group--error')) node.classList.remove('govuk-form-group--error');
  for (const node of form.querySelectorAll('.govuk-input--error')) node.classList.remove('govuk-input--error');
  const summary = $('[data-error-summary]');
  const list = $('[data-error-list]');
  list.replaceChildren();
  summary.hidden = !errors.length;
  for (const [id, message] of errors) {
    const target = $(`#${id}-error`);
    if (target) {
      target.hidden = false;
      target.replaceChildren(el('span', {class: 'govuk-visually-hidden'}, 'Error: '), message);
      target.closest('.govuk-form-group')?.classList.add('govuk-form-group--error');
      $(`input#${id}`)?.classList.add('govuk-input--error');
    }
    const focusable = $(`#${id}`) ? `#${id}` : `#${id}-group`;
    list.append(el('li', {}, el('a', {href: focusable}, message)));
  }
  if (errors.length) summary.focus();
}

function problemErrors(error) {
  // The API's 422 names each invalid part as body.<field>...: shown next to the field it names.
  const parts = error.problem.errors || [];
  if (!parts.length) return [['area', error.message]];
  return parts.map((p) => {
    const field = String(p.where || p.field || '').replace(/^body\./, '').split('.')[0];
    return [FIELDS[field] || 'area', `${field || 'request'}: ${p.message}`];
  });
}

async function submit(event) {
  event.preventDefault();
  const {body, errors} = readForm();
  showErrors(errors);
  if (errors.length) return;
  try {
    const record = await api('/coverage/reports', {
      method: 'POST', body: JSON.stringify(body), headers: {'Content-Type': 'application/json'},
    });
    follow(record);
    $('#report-heading').focus();
    listReports();
  } catch (error) {
    if (error instanceof ApiError && error.status === 422) showErrors(problemErrors(error));
    else showErrors([['area', error.message]]);
  }
}

// A report: progress, then its figures --------------------------------------------------------------
function describeArea(area) {
  if (!area) return 'not recorded';
  if (area.boroughs) return area.boroughs.map(boroughName).join(', ');
  if (area.bbox) return `box ${area.bbox.map((v) => num(v, 4)).join(', ')}`;
  return 'a drawn area';
}

function follow(record) {
  clearTimeout(polling);
  const section = $('[data-report]');
  section.hidden = false;
  $('#report-heading').textContent = `Report ${record.id}: ${describeArea(record.parameters.area)}`;
  const progress = record.progress || {};
  $('[data-report-progress]').value = record.state === 'done' ? 1 : progress.fraction || 0;
  $('[data-report-progress]').hidden = record.state === 'done';
  const state = {queued: 'Waiting to start…', running: `Running: step ${progress.done || 0} of ${progress.total || '…'}.`,
    done: 'Done.', failed: `Failed: ${record.message || 'no reason given'}.`,
    interrupted: 'Interrupted when the server stopped: request it again.'}[record.state];
  $('[data-report-state]').textContent = state;
  if (record.state === 'queued' || record.state === 'running') {
    polling = setTimeout(async () => follow(await api(`/coverage/reports/${record.id}`)), 1000);
    return;
  }
  $('[data-report-body]').replaceChildren(...(record.state === 'done' ? reportBody(record) : []));
  $('[data-report-figure]').hidden = record.state !== 'done';
  if (record.state === 'done') drawGaps(record);
  listReports();
}

function table(caption, head, rows, numericFrom = 1) {
  const cell = (tag, text, i) => el(tag, {class: `govuk-table__${tag === 'th' ? 'header' : 'cell'}${i >= numericFrom ? ` govuk-table__${tag === 'th' ? 'header' : 'cell'}--numeric` : ''}`, ...(tag === 'th' ? {scope: 'col'} : {})}, text);
  return el('table', {class: 'govuk-table'},
    el('caption', {class: 'govuk-table__caption govuk-table__caption--s'}, caption),
    el('thead', {class: 'govuk-table__head'}, el('tr', {class: 'govuk-table__row'}, ...head.map((h, i) => cell('th', h, i)))),
    el('tbody', {class: 'govuk-table__body'}, ...rows.map((r) => el('tr', {class: 'govuk-table__row'}, ...r.map((v, i) => cell('td', v, i))))));
}

function reportBody(record) {
  const s = record.summary;
  const p = record.parameters;
  const gaps = s.gaps;
  const lead = el('p', {class: 'govuk-body-l'},
    `${pct(s.whole_area.find((r) => r.threshold_m === p.gap_threshold)?.household_share)} of ${num(s.households)} households are within ${num(p.gap_threshold)} m of a usable asset; ` +
    `${num(gaps.count)} gaps hold ${num(gaps.households)} households over ${num(gaps.area_m2 / 1e6, 2)} km².`);
  const coverageTable = table('Coverage by distance', ['Within', 'Households covered', 'Share of households', 'Share of area'],
    s.whole_area.map((r) => [`${num(r.threshold_m)} m`, num(r.covered_households), pct(r.household_share), pct(r.area_share)]));
  const assets = table('Assets read', ['Assets', 'Points', 'Lines'], [
    ['Usable (they count)', num(s.assets.qualifying_points), num(s.assets.qualifying_lines)],
    ['Candidates (not yet usable)', num(s.assets.candidate_points), num(s.assets.candidate_lines)]]);
  const downloads = el('ul', {class: 'govuk-list'});
  for (const [name, label] of [['report.html', 'The full report (HTML: opens from disk, prints to A4)'],
    ['priorities.csv', 'Sites to open up first (CSV)'], ['gaps.geojson', 'Gaps (GeoJSON)'], ['demand.csv', 'Demand points and their distances (CSV)']]) {
    const button = el('button', {type: 'button', class: 'govuk-button govuk-button--secondary app-download'}, `Download: ${label}`);
    button.addEventListener('click', () => download(record.links[name], `report-${record.id}-${name}`));
    downloads.append(el('li', {}, button));
  }
  const projects = s.pipeline_projects.length
    ? el('p', {class: 'govuk-body'}, `Pipeline projects in the area: ${s.pipeline_projects.map((x) => x.title).join('; ')}.`)
    : el('p', {class: 'govuk-body'}, 'No Pipeline projects in the area.');
  return [lead, coverageTable, assets, projects, el('h3', {class: 'govuk-heading-s'}, 'Downloads'), downloads];
}

async function download(path, name) {
  const response = await fetch(prefix + path, {headers: authHeaders({Accept: '*/*'}), cache: 'no-store'});
  if (!response.ok) {
    $('[data-report-state]').textContent = `The download failed: the server answered ${response.status}.`;
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const link = el('a', {href: url, download: name});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function drawGaps(record) {
  $('[data-report-figure]').hidden = false;
  reportMap = reportMap || londonMap('report-map');
  reportMap.invalidateSize();
  const map = reportMap;
  if (gapsLayer) gapsLayer.remove();
  const gaps = await api(record.links['gaps.geojson']);
  gapsLayer = L.geoJSON(gaps, {style: {color: '#b10e1e', weight: 1, fillColor: '#d4351c', fillOpacity: 0.45}}).addTo(map);
  if (gaps.features?.length) map.fitBounds(gapsLayer.getBounds(), {maxZoom: 15});
}

// The list ----------------------------------------------------------------------------------------
async function listReports() {
  const asked = caller();
  if (!asked) return;
  const reports = await api('/coverage/reports?limit=50');
  if (caller() !== asked) return; // signed out or in as another key meanwhile: not this key's list
  const rows = reports.map((r) => {
    const share = r.summary?.whole_area?.find((w) => w.threshold_m === r.parameters?.gap_threshold)?.household_share;
    const open = el('button', {type: 'button', class: 'govuk-button govuk-button--secondary'}, 'Open', el('span', {class: 'govuk-visually-hidden'}, ` report ${r.id}`));
    open.addEventListener('click', async () => {
      follow(await api(`/coverage/reports/${r.id}`));
      $('#report-heading').focus();
    });
    return el('tr', {class: 'govuk-table__row'},
      el('td', {class: 'govuk-table__cell'}, `${r.id}, ${new Date(r.created_at).toLocaleString('en-GB')}`),
      el('td', {class: 'govuk-table__cell'}, describeArea(r.parameters?.area)),
      el('td', {class: 'govuk-table__cell'}, r.created_by),
      el('td', {class: 'govuk-table__cell'}, r.state),
      el('td', {class: 'govuk-table__cell govuk-table__cell--numeric'}, share === undefined ? '–' : `${pct(share)} within ${num(r.parameters?.gap_threshold)} m`),
      el('td', {class: 'govuk-table__cell'}, open));
  });
  $('[data-list-rows]').replaceChildren(...rows);
  $('[data-list]').hidden = !rows.length;
  $('[data-list-empty]').hidden = Boolean(rows.length);
}

// Wiring ------------------------------------------------------------------------------------------
for (const radio of form.querySelectorAll('input[name=area]')) radio.addEventListener('change', () => showArea(radio.value));
$('[data-add-centre]').addEventListener('click', () => addCorner(ensureMap().getCenter()));
$('[data-undo]').addEventListener('click', () => { corners.pop(); redraw(); });
$('[data-clear]').addEventListener('click', () => { corners.length = 0; redraw(); });
form.addEventListener('submit', submit);

await ready;
onCaller((who) => {
  $('[data-needs-key]').hidden = Boolean(who);
  $('[data-with-key]').hidden = !who;
  if (!who) return;
  if (who.role === 'borough' && !form.querySelector('input[name=borough]:checked')) {
    const own = $(`#borough-${who.borough_code}`);
    if (own) own.checked = true;
  }
  listReports();
});
