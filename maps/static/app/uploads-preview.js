/* /app/uploads: the preview of a dry run, drawn from the upload's record (GET /uploads/{id}),
 * its row errors (errors.geojson) and its rows (rows.geojson, any format and CRS): facts,
 * counts, the column mapping (editable), the fields that change, a paged table of row errors
 * and a small map of the rows.
 *
 * Every value is set with textContent or DOM building: a file's cells never become markup.
 */
import { boroughName, el } from './app.js';

const $ = (selector) => document.querySelector(selector);
const number = (n) => Number(n || 0).toLocaleString('en-GB');
const PAGE_SIZE = 20;
const KINDS = JSON.parse($('#upload-kinds').textContent);
const FIELDS = JSON.parse($('#upload-fields').textContent);
const AUTO_SUBTYPE_NOTE = 'no column gives the subtype';

export { el };

export const kindLabel = (kind) => KINDS[kind] || kind || 'decided from the geometry';
export { number };

const view = {record: null, errors: [], page: 0, map: null, layers: null, highlight: null};

/* ---- facts, counts, notes ---------------------------------------------------------------- */

function facts(record) {
  const source = record.report?.source || {};
  const layers = source.layers || [];
  const rows = [
    ['Upload', `number ${record.id}, sent by ${record.created_by}`],
    ['File', `${record.file_name} (${number(Math.ceil(record.size_bytes / 1024))} KB)`],
    ['Format', record.format || source.format || 'not read'],
    ['Layer', source.layer ? (layers.length > 1 ? `${source.layer} (of ${layers.length}: ${layers.join(', ')})` : source.layer) : 'the only one'],
    ['Coordinates', record.crs ? `${record.crs}${source.crs_inferred ? ' (inferred from the coordinates)' : ''}` : 'not read'],
    ['Read as', `${kindLabel(record.kind)} of ${boroughName(record.borough_code)}, ${record.mode === 'replace' ? 'replace' : 'append'} mode`],
    ['Rows with errors', record.skip_invalid ? 'left out when applied' : 'stop the upload from being applied'],
  ];
  $('[data-facts]').replaceChildren(
    ...rows.map(([key, value]) =>
      el('div', {class: 'govuk-summary-list__row'},
        el('dt', {class: 'govuk-summary-list__key', text: key}),
        el('dd', {class: 'govuk-summary-list__value', text: value}))),
  );
}

function counts(record) {
  const c = record.counts || {};
  const items = [
    ['new', c.new, 'new', 'assets added'],
    ['changed', c.changed, 'changed', 'stored assets updated'],
    ['unchanged', c.unchanged, 'unchanged', 'equal to the stored asset'],
    ['retired', c.retired, 'retired', record.mode === 'replace' ? 'stored, not in the file' : 'none in append mode'],
    ['invalid', c.invalid, 'invalid', `rows with errors (${number(c.errors)} errors)`],
  ];
  $('[data-counts]').replaceChildren(
    ...items.map(([key, n, label, hint]) =>
      el('li', {class: `app-count app-count--${key}${key === 'invalid' && n ? ' app-count--alert' : ''}`, 'data-count': key},
        el('span', {class: 'app-count__number', text: number(n)}),
        el('span', {class: 'app-count__label', text: label}),
        el('span', {class: 'app-count__hint', text: hint}))),
  );
  const notes = [...(record.report?.notes || []), ...(record.mapping?.notes || [])];
  $('[data-notes-area]').hidden = notes.length === 0;
  $('[data-notes]').replaceChildren(...[...new Set(notes)].map((n) => el('li', {text: n})));
}

function changedFields(record) {
  const entries = Object.entries(record.changed_fields || {}).sort((a, b) => b[1] - a[1]);
  $('[data-changed-none]').textContent = record.state === 'applied' ? 'No stored asset changed.' : 'No stored asset would change.';
  $('[data-changed-none]').hidden = entries.length > 0;
  $('[data-changed-table]').hidden = entries.length === 0;
  $('[data-changed-rows]').replaceChildren(
    ...entries.map(([name, n]) =>
      el('tr', {class: 'govuk-table__row'},
        el('td', {class: 'govuk-table__cell', text: name}),
        el('td', {class: 'govuk-table__cell govuk-table__cell--numeric', text: number(n)}))),
  );
}

/* ---- the column mapping ------------------------------------------------------------------ */

const TARGETS = {
  extra: ['Kept as sent', 'Kept as sent, in the asset’s extra attributes.'],
  ignored: ['Ignored', 'Left out: not stored at all.'],
};

function mappingOptions(kind, current) {
  const fields = FIELDS.filter((f) => f.kinds.includes(kind));
  const options = [
    ...fields.map((f) => el('option', {value: f.name, text: f.name})),
    ...Object.entries(TARGETS).map(([value, [text]]) => el('option', {value, text})),
  ];
  for (const option of options) {
    option.selected = option.value === current;
  }
  return options;
}

function meaning(target) {
  return FIELDS.find((f) => f.name === target)?.description || TARGETS[target]?.[1] || '';
}

function mappingTable(record) {
  const columns = record.mapping?.columns || {};
  // In the file's order (the stored mapping's keys come back in the database's order).
  const source = record.report?.source || {};
  const order = [...(source.columns || []), ...(source.geometry_columns || [])].filter((c) => c in columns);
  const names = [...order, ...Object.keys(columns).filter((c) => !order.includes(c))];
  const rows = names.map((column, i) => {
    const target = columns[column];
    const id = `map-${i}`;
    const about = el('td', {class: 'govuk-table__cell app-mapping-meaning', id: `${id}-meaning`,
      text: target === 'geometry' ? 'The coordinates the geometry was built from.' : meaning(target)});
    const cell = target === 'geometry'
      ? el('td', {class: 'govuk-table__cell', text: 'geometry'})
      : el('td', {class: 'govuk-table__cell'},
        el('label', {class: 'govuk-visually-hidden', for: id, text: `Where column ${column} goes`}),
        el('select', {class: 'govuk-select app-mapping-select', id, 'data-column': column, 'data-was': target,
          'aria-describedby': `${id}-meaning mapping-error`,
          onchange: (event) => { about.textContent = meaning(event.target.value); }},
        mappingOptions(record.mapping.kind, target)));
    return el('tr', {class: 'govuk-table__row'},
      el('th', {scope: 'row', class: 'govuk-table__header', text: column}), cell, about);
  });
  $('[data-mapping-rows]').replaceChildren(...rows);
}

/** Columns sent to the same field by the selects: [{field, columns, id}] (the file's mapping must be one to one). */
export function mappingProblems() {
  const seen = new Map();
  const problems = [];
  for (const select of document.querySelectorAll('.app-mapping-select')) {
    const target = select.value;
    if (target === 'extra' || target === 'ignored') {
      continue;
    }
    if (seen.has(target)) {
      problems.push({field: target, columns: [seen.get(target).dataset.column, select.dataset.column], id: select.id});
    } else {
      seen.set(target, select);
    }
  }
  return problems;
}

/** Whether a select differs from what the shown preview used. */
export const mappingEdited = () =>
  [...document.querySelectorAll('.app-mapping-select')].some((s) => s.value !== s.dataset.was);

/** The mapping file (the format POST /uploads and `connectivity import --mapping` read) for the selects shown. */
export function mappingSpec(record = view.record) {
  const columns = {};
  for (const select of document.querySelectorAll('.app-mapping-select')) {
    if (select.value === 'ignored') {
      columns[select.dataset.column] = null;
    } else if (select.value !== 'extra') {
      columns[select.dataset.column] = select.value;
    }
  }
  const defaults = {...(record?.mapping?.defaults || {})};
  // What the service adds by itself is left out, so the file says only what was chosen.
  if (defaults.status === 'unknown') {
    delete defaults.status;
  }
  if (defaults.subtype === 'other' && (record?.mapping?.notes || []).some((n) => n.startsWith(AUTO_SUBTYPE_NOTE))) {
    delete defaults.subtype;
  }
  return {columns, values: record?.mapping?.values || {}, defaults};
}

/* ---- row errors -------------------------------------------------------------------------- */

function errorRows() {
  const start = view.page * PAGE_SIZE;
  const slice = view.errors.slice(start, start + PAGE_SIZE);
  $('[data-errors-rows]').replaceChildren(
    ...slice.map((f) => {
      const p = f.properties;
      const cells = [
        [String(p.row), ' govuk-table__cell--numeric'],
        [p.source_id ?? '—', ''],
        [p.column ?? '—', ''],
        [p.value ?? '—', ' app-cell-value'],
        [p.message, ''],
      ];
      return el('tr', {class: `govuk-table__row${view.highlight === p.row ? ' app-row--target' : ''}`,
        'data-error-row': p.row, tabindex: view.highlight === p.row ? '-1' : null},
      cells.map(([text, extra]) => el('td', {class: `govuk-table__cell${extra}`, text})));
    }),
  );
  const pages = Math.max(1, Math.ceil(view.errors.length / PAGE_SIZE));
  $('[data-page-where]').textContent =
    `Page ${view.page + 1} of ${pages}: errors ${number(start + 1)} to ${number(Math.min(start + PAGE_SIZE, view.errors.length))} of ${number(view.errors.length)}`;
  $('[data-page="-1"]').disabled = view.page === 0;
  $('[data-page="1"]').disabled = view.page >= pages - 1;
  $('[data-pager]').hidden = pages === 1;
}

for (const button of document.querySelectorAll('[data-page]')) {
  button.addEventListener('click', () => {
    view.page += Number(button.dataset.page);
    view.highlight = null;
    errorRows();
  });
}

/** Turn to the page of the table that lists ``row``'s first error and move the focus there. */
export function showErrorRow(row) {
  const index = view.errors.findIndex((f) => f.properties.row === row);
  if (index < 0) {
    return;
  }
  view.page = Math.floor(index / PAGE_SIZE);
  view.highlight = row;
  errorRows();
  const target = document.querySelector(`[data-error-row="${row}"]`);
  target?.scrollIntoView({block: 'center'});
  target?.focus();
}

function errorsSection(record, features) {
  view.errors = features;
  view.page = 0;
  view.highlight = null;
  const c = record.counts || {};
  const kept = record.report?.errors_kept ?? features.length;
  const any = features.length > 0;
  $('[data-errors-summary]').textContent = any
    ? `${number(c.errors)} error${c.errors === 1 ? '' : 's'} in ${number(c.invalid)} row${c.invalid === 1 ? '' : 's'}` +
      (kept < c.errors ? `; the first ${number(kept)} are listed and in the downloads.` : '.')
    : 'No row has an error.';
  $('[data-errors-area]').hidden = !any;
  $('[data-errors-downloads]').hidden = !any;
  if (any) {
    errorRows();
  }
}

/* ---- the map ----------------------------------------------------------------------------- */

// Okabe–Ito blue and vermillion, told apart in every common colour vision; the shapes differ too
// (a circle, a square with a cross), so colour is never the only sign.
export const MAP_COLOURS = {valid: '#0072b2', invalid: '#d55e00'};
export const MAP_LIMIT = 5000;

function popupFor(feature) {
  const p = feature.properties;
  const listed = view.errors.some((f) => f.properties.row === p.row);
  return el('div', {class: 'app-popup'},
    el('p', {class: 'govuk-body-s govuk-!-font-weight-bold', text: `Row ${p.row}${p.source_id ? ` (${p.source_id})` : ''}`}),
    el('ul', {class: 'govuk-list govuk-body-s'}, p.errors.map((e) => el('li', {
      text: `${e.column ? `${e.column}: ` : ''}${e.message}`}))),
    listed
      ? el('button', {type: 'button', class: 'govuk-button govuk-button--secondary app-popup__button',
        text: 'Show in the error table', onclick: () => showErrorRow(p.row)})
      : null);
}

function ensureMap() {
  if (view.map) {
    view.layers.clearLayers();
    return;
  }
  view.map = L.map('upload-map', {zoomSnap: 0.5, attributionControl: false});
  view.layers = L.featureGroup().addTo(view.map);
  view.canvas = L.canvas({padding: 0.2});
}

function drawValid(features) {
  const style = {color: MAP_COLOURS.valid, weight: 2, fillColor: MAP_COLOURS.valid, fillOpacity: 0.55, radius: 4,
    renderer: view.canvas, interactive: false};
  L.geoJSON({type: 'FeatureCollection', features}, {
    renderer: view.canvas, interactive: false,
    pointToLayer: (_, latlng) => L.circleMarker(latlng, style),
  }).addTo(view.layers);
}

function drawInvalid(features) {
  const icon = L.divIcon({className: 'app-marker-invalid', html: '<span aria-hidden="true">✕</span>', iconSize: [16, 16]});
  L.geoJSON({type: 'FeatureCollection', features}, {
    // A marker is focusable (keyboard: true): Enter opens its popup (Leaflet), Space too (here), as a click does.
    pointToLayer: (feature, latlng) => L.marker(latlng, {icon, keyboard: true,
      title: `Row ${feature.properties.row}: ${feature.properties.errors[0]?.message || 'has an error'}`,
      alt: `Row ${feature.properties.row} has an error`}),
    onEachFeature: (feature, layer) => {
      layer.bindPopup(() => popupFor(feature));
      layer.on('add', () => {
        const node = layer.getElement();
        node?.setAttribute('data-row', String(feature.properties.row));
        node?.addEventListener('keydown', (event) => {
          if (event.key === ' ') {
            event.preventDefault();
            layer.openPopup();
          }
        });
      });
    },
  }).addTo(view.layers);
}

function mapNote(rows) {
  const c = rows.counts;
  const drawn = rows.numberReturned;
  const parts = [drawn < rows.numberMatched
    ? `Showing ${number(drawn)} of ${number(rows.numberMatched)} rows, evenly spread through the file`
    : `Showing all ${number(drawn)} rows that have a location`];
  const unlocated = c.invalid - c.invalid_located;
  if (unlocated > 0) {
    parts.push(`${number(unlocated)} row${unlocated === 1 ? '' : 's'} with errors ${unlocated === 1 ? 'has' : 'have'} no usable location`);
  }
  return parts;
}

function legend(rows) {
  const c = rows.counts;
  $('[data-legend-valid]').textContent =
    `Valid row (blue circle): ${number(c.valid_returned)}${c.valid_returned < c.valid ? ` of ${number(c.valid)}` : ''} shown`;
  $('[data-legend-invalid]').textContent =
    `Row with an error (orange square with a cross): ${number(c.invalid_returned)}` +
    `${c.invalid_returned < c.invalid ? ` of ${number(c.invalid)}` : ''} shown; select one to read its error`;
}

/** Draw the rows of GET /uploads/{id}/rows.geojson (``rows``; null if it could not be read, ``note`` says why). */
export function drawMap(rows, outline, note = '') {
  ensureMap();
  if (outline) {
    L.geoJSON(outline, {interactive: false, style: () => ({color: '#505a5f', weight: 2, fill: false})}).addTo(view.layers);
  }
  const parts = [];
  if (rows) {
    drawValid(rows.features.filter((f) => f.properties.valid));
    drawInvalid(rows.features.filter((f) => !f.properties.valid));
    legend(rows);
    parts.push(...mapNote(rows));
  }
  $('[data-map-legend]').hidden = !rows;
  if (note) {
    parts.push(note);
  }
  if (outline) {
    parts.push(`the grey line is ${boroughName(view.record.borough_code)}’s boundary`);
  }
  const text = parts.join('; ');
  $('[data-map-note]').textContent = text ? `${text[0].toUpperCase()}${text.slice(1)}.` : '';
  view.map.invalidateSize();
  const bounds = view.layers.getBounds();
  if (bounds.isValid()) {
    view.map.fitBounds(bounds, {padding: [20, 20], maxZoom: 17});
  } else {
    view.map.setView([51.507, -0.128], 10);
  }
}

/* ---- the whole preview ------------------------------------------------------------------- */

/** Show a previewed (or applied) upload's record and its row errors (GeoJSON features). */
export function showPreview(record, errorFeatures) {
  view.record = record;
  $('[data-preview]').hidden = false;
  const applied = record.state === 'applied';
  $('[data-preview-heading]').textContent = `2. ${applied ? 'Applied' : 'Preview of'} ${record.file_name}`;
  $('[data-counts-heading]').textContent = applied ? 'What the file did' : 'What the file would do';
  $('[data-changed-heading]').textContent = applied ? 'Fields that changed' : 'Fields that would change';
  facts(record);
  counts(record);
  mappingTable(record);
  changedFields(record);
  errorsSection(record, errorFeatures);
}

export function hidePreview() {
  view.record = null;
  $('[data-preview]').hidden = true;
}

export const shownRecord = () => view.record;
