/* /app/projects: Pipeline projects on a map and in a table, filtered; the unplaced ones (admins).
 *
 * The filters live in the page's query string, so a link shows the same list. Rows come from
 * GET /pipeline/projects as the signed-in key may see them (owners only for admins); every value
 * is set as text.
 */
import { api, boroughName, el, onCaller, ready } from './app.js';

const $ = (selector, root = document) => root.querySelector(selector);
const form = $('[data-filters]');
const FILTERS = ['status', 'phase', 'borough', 'placement', 'tag', 'in_view', 'london_wide'];
const map = L.map('projects-map', {keyboard: true}).setView([51.5074, -0.1278], 10);
const markers = L.layerGroup().addTo(map);
let after = null;
let who = null;
let generation = 0; // a newer list (new filters, another key) makes an older answer stale


/** "Apr 2020" from "2020-04-01"; "…" for no date. */
function month(day) {
  if (!day) return '…';
  const [year, number] = day.split('-').map(Number);
  return new Date(Date.UTC(year, number - 1, 1)).toLocaleDateString('en-GB', {month: 'short', year: 'numeric', timeZone: 'UTC'});
}

function columns() {
  const base = [['Project', (p) => p.title], ['Organisation', (p) => p.organisation],
    ['Borough', (p) => (p.london_wide ? 'London-wide' : p.borough_code ? boroughName(p.borough_code) : '–')],
    ['Status', (p) => p.status || '–'], ['Phase', (p) => p.phase || '–'],
    ['Runs', (p) => (p.project_start || p.project_end ? `${month(p.project_start)} to ${month(p.project_end)}` : 'not given'), 'app-nowrap'],
    ['Placed by', (p) => ({exact: 'its site', borough: 'its borough', london: 'London-wide'}[p.placement] || p.placement)]];
  if (who?.role === 'admin') base.push(['Owner', (p) => [p.owner, p.owner_email].filter(Boolean).join(', ') || '–', 'app-owner']);
  return base;
}

function query() {
  const params = new URLSearchParams();
  for (const name of ['status', 'phase', 'borough', 'placement', 'tag']) {
    const value = form.elements[name].value.trim();
    if (value) params.set(name, value);
  }
  if (form.elements.in_view.checked) {
    const b = map.getBounds();
    params.set('bbox', [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(5)).join(','));
    if (form.elements.london_wide.checked) params.set('london_wide', 'true');
  }
  params.set('limit', '200');
  return params;
}

function fromUrl() {
  const params = new URLSearchParams(location.search);
  for (const name of FILTERS) {
    const field = form.elements[name];
    if (field.type === 'checkbox') field.checked = params.get(name) === '1';
    else field.value = params.get(name) || '';
  }
  if (params.has('view')) {
    const [lat, lng, zoom] = params.get('view').split(',').map(Number);
    if ([lat, lng, zoom].every(Number.isFinite)) map.setView([lat, lng], zoom);
  }
}

function toUrl() {
  const params = new URLSearchParams();
  for (const name of FILTERS) {
    const field = form.elements[name];
    if (field.type === 'checkbox' ? field.checked : field.value.trim()) params.set(name, field.type === 'checkbox' ? '1' : field.value.trim());
  }
  if (form.elements.in_view.checked) {
    const c = map.getCenter();
    params.set('view', `${c.lat.toFixed(5)},${c.lng.toFixed(5)},${map.getZoom()}`);
  }
  history.replaceState(null, '', `${location.pathname}${params.size ? `?${params}` : ''}`);
}

function select(id) {
  for (const row of document.querySelectorAll('[data-rows] tr')) row.classList.toggle('app-selected', row.dataset.id === String(id));
  const row = $(`[data-rows] tr[data-id="${id}"]`);
  if (row) {
    row.scrollIntoView({block: 'center'});
    row.querySelector('th').focus();
  }
}

function addRows(projects) {
  const cols = columns();
  for (const p of projects) {
    const cells = cols.map(([, value, extra], i) => (i === 0
      ? el('th', {scope: 'row', class: 'govuk-table__header', tabindex: '-1'}, value(p))
      : el('td', {class: `govuk-table__cell ${extra || ''}`}, value(p))));
    $('[data-rows]').append(el('tr', {class: 'govuk-table__row', 'data-id': p.id}, ...cells));
    const point = p.location || p.geometry;
    if (point?.type === 'Point') {
      const [lng, lat] = point.coordinates;
      const exact = p.placement === 'exact';
      L.circleMarker([lat, lng], {radius: exact ? 7 : 6, color: '#12385b', weight: 2, fillColor: exact ? '#12385b' : '#8eb8dc', fillOpacity: 0.9})
        .bindTooltip(p.title).on('click', () => select(p.id)).addTo(markers);
    }
  }
}

async function load(more = false) {
  const mine = more ? generation : ++generation;
  const params = query();
  if (more && after !== null) params.set('after', after);
  if (!more) {
    $('[data-head]').replaceChildren(...columns().map(([name]) => el('th', {scope: 'col', class: 'govuk-table__header'}, name)));
    $('[data-rows]').replaceChildren();
    markers.clearLayers();
  }
  try {
    const page = await api(`/pipeline/projects?${params}`);
    if (mine !== generation) return; // the filters or the key changed while this was on its way
    addRows(page.projects);
    after = page.next_after;
    $('[data-more]').hidden = after === null || after === undefined;
    const shown = $('[data-rows]').children.length;
    $('[data-count]').textContent = shown === 0 ? 'No projects match the filters.' : `${shown} project${shown === 1 ? '' : 's'} shown${after ? ' (more below)' : ''}.`;
  } catch (error) {
    if (mine !== generation) return;
    $('[data-count]').textContent = `The projects could not be loaded: ${error.message}`;
  }
}

async function loadUnplaced() {
  const section = $('[data-unplaced]');
  section.hidden = who?.role !== 'admin';
  if (section.hidden) return;
  const answer = await api('/pipeline/unplaced');
  $('[data-unplaced-rows]').replaceChildren(...answer.projects.map((p) => el('tr', {class: 'govuk-table__row'},
    el('td', {class: 'govuk-table__cell'}, p.title), el('td', {class: 'govuk-table__cell'}, p.organisation || '–'),
    el('td', {class: 'govuk-table__cell'}, p.unplaced_reason || '–'))));
}

api('/collections/boroughs/items?limit=100').then((data) => {
  L.geoJSON(data, {style: {color: '#505a5f', weight: 1, fill: false}, interactive: false}).addTo(map);
}).catch(() => {});
form.addEventListener('submit', (event) => {
  event.preventDefault();
  toUrl();
  load();
});
$('[data-more]').addEventListener('click', () => load(true));
fromUrl();
await ready;
onCaller((caller) => {
  who = caller;
  load();
  loadUnplaced();
});
