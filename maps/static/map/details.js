/* The details panel: everything public about a clicked (or found) feature, what the signed-in key may
 * see besides, and links to its history and to the API.
 *
 * Asset tiles carry only what the map draws by; the rest comes from /assets/{id} (the server
 * leaves out what the caller may not see), the wayleave summary from /map/assets/{id}/wayleaves
 * (public: status and days), and each wayleave's operator, references and dates from
 * /wayleaves/{id}, which needs a key.
 */
import { ApiError, api, caller, prefix } from '../app/app.js';
import { boroughName, config, date, el, number, statusLabel, subtypeLabel, wayleaveGroup, wayleaveStatusLabel } from './util.js';
import { isSummary } from './layers.js';
import { boroughCounts } from './places.js';

const panel = document.querySelector('[data-details]');
const title = panel.querySelector('[data-details-title]');
const kindLine = panel.querySelector('[data-details-kind]');
const list = panel.querySelector('[data-details-list]');
const more = panel.querySelector('[data-details-more]');
const links = panel.querySelector('[data-details-links]');
let shown = 0;
let lastSelection = null;
let zoomToBounds = () => {};

/** What the "Zoom to" button of a borough does (the map frames `[south, west, north, east]`). */
export function onZoomTo(fn) {
  zoomToBounds = fn;
}

const KIND_NAMES = {public_building: 'Public building', street_furniture: 'Street furniture', duct: 'Duct'};
const YES_NO = (v) => (v === true ? 'Yes' : v === false ? 'No' : v);
/** Public fields of an asset, in reading order, with how each is written. */
const ASSET_FIELDS = [
  ['name', 'Name'], ['subtype', 'Type'], ['status', 'Status', statusLabel], ['borough_code', 'Borough', boroughName],
  ['source_id', 'Source id'], ['owner', 'Owner'], ['height_m', 'Height', (v) => `${number(v, 1)} m`],
  ['power_available', 'Power available', YES_NO], ['power_source', 'Power source', (v) => v.replace(/_/g, ' ')],
  ['duct_diameter_mm', 'Duct diameter', (v) => `${number(v)} mm`],
  ['duct_spare_capacity_pct', 'Spare capacity', (v) => `${number(v)}%`], ['rooftop_access', 'Rooftop access', YES_NO],
  ['listed_building', 'Listed building', YES_NO], ['conservation_area', 'Conservation area', YES_NO],
  ['positional_accuracy_m', 'Positional accuracy', (v) => `${number(v, 1)} m`], ['survey_quality', 'Survey quality'],
  ['last_surveyed', 'Last surveyed', date], ['provenance', 'Provenance', (v) => v.replace(/_/g, ' ')],
  ['version', 'Version'], ['valid_from', 'This version since', date], ['changed_by', 'Last changed by'],
];

function row(label, value) {
  if (value === null || value === undefined || value === '') {
    return null;
  }
  return el('div', {class: 'govuk-summary-list__row'},
    el('dt', {class: 'govuk-summary-list__key', text: label}),
    el('dd', {class: 'govuk-summary-list__value', text: String(value)}));
}

function link(text, href) {
  return el('a', {class: 'govuk-link', href: prefix + href, text});
}

function hint(text) {
  return el('p', {class: 'govuk-body-s app-map-details__hint', text});
}

/** Open the panel with a heading; the rows, more and links are filled by the caller. */
function open(heading, kind, {focus = true} = {}) {
  shown += 1;
  panel.hidden = false;
  title.textContent = heading;
  kindLine.textContent = kind;
  list.replaceChildren();
  more.replaceChildren();
  links.replaceChildren();
  if (focus) {
    title.focus({preventScroll: false});
  }
  return shown;
}

export function closeDetails() {
  panel.hidden = true;
  shown += 1;
}

let closed = () => {};

/** Call `fn()` when the panel is closed (the map drops its outline of the chosen feature). */
export function onClose(fn) {
  closed = fn;
}

panel.querySelector('[data-details-close]').addEventListener('click', () => {
  closeDetails();
  closed();
  document.getElementById('map').focus();
});

async function wayleaveRows(id, stillShown) {
  if (!caller()) {
    return [hint('Sign in to see the operator, references and key dates.')];
  }
  try {
    const w = await api(`/wayleaves/${encodeURIComponent(id)}`);
    if (!stillShown()) {
      return [];
    }
    const due = w.due_on ? date(w.due_on) + (w.overdue ? ' (overdue)' : '') : '';
    const dl = el('dl', {class: 'govuk-summary-list govuk-summary-list--no-border app-map-details__list', dataset: {wayleaveDetail: id}},
      row('Operator', w.operator), row('Reference', w.reference), row('Operator reference', w.operator_reference),
      row('Requested', date(w.requested_on)), row('Surveyed', date(w.surveyed_on)), row('Terms issued', date(w.terms_issued_on)),
      row('Signed', date(w.signed_on)), row('Live', date(w.live_on)), row('Expires', date(w.expires_on)),
      row('In status since', date(w.status_since)), row('Due', due));
    return [dl, el('p', {class: 'govuk-body-s'}, link('Its status history (API)', `/wayleaves/${id}/history`))];
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) {
      return [hint("Your key may not see this wayleave's operator: admin and borough keys see every wayleave, operator keys only their own operator's.")];
    }
    if (error instanceof ApiError && error.status === 404) {
      return [hint('This wayleave is no longer on record.')];
    }
    return [hint(`The details could not be loaded (${error.status || error.message}).`)];
  }
}

async function showWayleave(p, id) {
  const ticket = open(p.site_name || `Wayleave ${id}`, `Wayleave ${id}`);
  const group = wayleaveGroup(p.status);
  list.append(...[
    row('Status', `${wayleaveStatusLabel(p.status)} (${group.label.toLowerCase()})`),
    row('Days in status', p.days_in_status !== undefined ? number(p.days_in_status) : ''),
    row('Borough', boroughName(p.borough_code)),
  ].filter(Boolean));
  panel.dataset.wayleaveId = id;
  links.append(link('This wayleave in the API', `/wayleaves/${id}`));
  more.append(...await wayleaveRows(id, () => shown === ticket));
}

async function assetWayleaves(id, ticket) {
  let found;
  try {
    found = await api(`/map/assets/${encodeURIComponent(id)}/wayleaves`);
  } catch (error) {
    return [];
  }
  if (shown !== ticket) {
    return [];
  }
  const heading = el('h3', {class: 'govuk-heading-s app-map-details__sub', text: 'Wayleaves'});
  if (!found.length) {
    return [heading, el('p', {class: 'govuk-body-s', text: 'No wayleave on this asset’s sites.'})];
  }
  const items = [];
  for (const w of found) {
    items.push(el('p', {class: 'govuk-body-s app-map-details__wayleave'},
      el('strong', {text: wayleaveStatusLabel(w.status)}),
      ` for ${number(w.days_in_status)} days (since ${date(w.status_since)}) on site “${w.site_name || w.site_id}”.`));
    items.push(...await wayleaveRows(w.id, () => shown === ticket));
  }
  return [heading, ...items];
}

/** An asset: its public fields (and what the key may see), its wayleaves, links. */
export async function showAsset(id, layer, extra = []) {
  const ticket = open(`Asset ${id}`, 'Loading…');
  panel.dataset.assetId = id;
  let a;
  try {
    a = await api(`/assets/${encodeURIComponent(id)}`);
  } catch (error) {
    if (shown === ticket) {
      kindLine.textContent = error.status === 404 ? 'This asset is no longer on record.' : `The asset could not be loaded (${error.message}).`;
    }
    return;
  }
  if (shown !== ticket) {
    return;
  }
  title.textContent = a.name || `${subtypeLabel(a.kind, a.subtype)} ${a.source_id}`;
  kindLine.textContent = `${KIND_NAMES[a.kind] || a.kind} · asset ${a.id}`;
  list.append(...extra, ...ASSET_FIELDS.map(([key, label, format]) => {
    const value = a[key];
    if (value === null || value === undefined || value === '') {
      return null;
    }
    return row(label, key === 'subtype' ? subtypeLabel(a.kind, value) : format ? format(value) : value);
  }).filter(Boolean));
  const extraFields = Object.entries(a.extra || {});
  if (extraFields.length) {
    more.append(el('h3', {class: 'govuk-heading-s app-map-details__sub', text: 'From the borough’s file'}),
      el('dl', {class: 'govuk-summary-list govuk-summary-list--no-border app-map-details__list'},
        ...extraFields.map(([k, v]) => row(k, typeof v === 'object' ? JSON.stringify(v) : v))));
  }
  const collection = layer || {public_building: 'public_buildings', street_furniture: 'street_furniture', duct: 'ducts'}[a.kind];
  links.append(link('History', `/assets/${a.id}/history`), ' · ', link('This asset in the API', `/assets/${a.id}`),
    ' · ', link('As an OGC API feature', `/collections/${collection}/items/${a.id}`));
  more.append(...await assetWayleaves(a.id, ticket));
}

async function showProject(id, p) {
  const ticket = open(p.title || `Project ${id}`, `Pipeline project ${id}`);
  let project = p;
  try {
    project = await api(`/pipeline/projects/${encodeURIComponent(id)}`);
  } catch (error) {
    // The tile's properties stand in.
  }
  if (shown !== ticket) {
    return;
  }
  title.textContent = project.title || title.textContent;
  list.append(...[
    row('Organisation', project.organisation), row('Department', project.department), row('Status', project.status),
    row('Phase', project.phase), row('Borough', boroughName(project.borough_code)),
    row('Placed', project.placement === 'exact' ? 'At its site' : project.placement === 'borough' ? 'Somewhere in its borough (its site is not known)' : project.placement),
    row('Tags', (project.tags || []).join(', ') || project.tags_text), row('Starts', date(project.project_start)),
    row('Ends', date(project.project_end)), row('Owner', project.owner),
  ].filter(Boolean));
  links.append(link('This project in the API', `/pipeline/projects/${id}`));
}

function showBorough(p) {
  open(p.name, p.code === 'E09000001' ? 'London authority' : 'London borough');
  const counts = boroughCounts();
  list.append(...[
    row('GSS code', p.code), row('Area', `${number(p.area_km2, 1)} km²`), row('Assets (all kinds)', number(p.assets)),
    row('Assets shown (layers and filters)', number(counts[p.code] || 0)),
    row('Assets shown per km²', number((counts[p.code] || 0) / p.area_km2, 1)),
  ].filter(Boolean));
  links.append(link('The boroughs in the API', '/boroughs'), ' · ', link('Its outline (OGC API)', `/collections/boroughs/items/${p.code}`));
}

/** What a click on the map (or a search) chose. */
export async function showSelection(selection) {
  lastSelection = selection;
  const {kind} = selection;
  if (kind === 'borough') {
    showBorough(selection.properties);
    const button = el('button', {type: 'button', class: 'govuk-button govuk-button--secondary app-map-details__zoom', text: `Zoom to ${selection.properties.name}`});
    button.addEventListener('click', () => zoomToBounds(selection.properties.bounds));
    more.append(button);
  } else if (kind === 'feature') {
    const {spec, properties: p, id} = selection;
    if (isSummary(p)) {
      const what = p.length_m !== undefined
        ? `${number(p.length_m / 1000, 2)} km${p.count ? ` in ${number(p.count)} routes` : ''}`
        : number(p.count);
      open(spec.label, 'Zoom in to see each one');
      list.append(row('Here', what));
    } else if (spec.collection === 'wayleaves') {
      await showWayleave(p, id);
    } else if (spec.collection === 'pipeline_projects') {
      await showProject(id, p);
    } else {
      await showAsset(id, spec.collection);
    }
  } else if (kind === 'place') {
    await showPlace(selection.place);
  } else if (kind === 'priority') {
    const q = selection.priority;
    await showAsset(q.asset_id, null, [row('Priority', `${q.rank} of the report’s candidates`),
      row('Households it adds', number(Number(q.gain), 0)), row('Share covered with it', `${number(Number(q.household_share) * 100, 1)}%`)]);
  }
}

async function showPlace(place) {
  if (place.kind === 'asset') {
    await showAsset(place.id, place.layer);
    return;
  }
  if (place.kind === 'project') {
    await showProject(place.id, {title: place.label});
    return;
  }
  if (place.kind === 'borough') {
    const f = config.boroughs.features.find((b) => b.properties.code === place.id);
    if (f) {
      showBorough(f.properties);
      return;
    }
  }
  const ticket = open(place.label, place.detail);
  list.append(...[row('Borough', boroughName(place.borough_code))].filter(Boolean));
  if (place.kind === 'postcode') {
    try {
      const near = await api(`/places/nearest?lon=${place.lon}&lat=${place.lat}`);
      if (shown === ticket && near.ward) {
        list.append(row('Ward', near.ward));
      }
    } catch (error) {
      // The postcode alone is shown.
    }
    links.append(link('Where it is (API)', `/places/nearest?lon=${place.lon}&lat=${place.lat}`));
  } else if (place.kind === 'ward') {
    list.append(row('GSS code', place.id));
  }
}

/** Show the last selection again (the caller changed: what it may see changed too). */
export function refreshDetails() {
  if (!panel.hidden && lastSelection) {
    showSelection(lastSelection);
  }
}
