/* The layer checkboxes and the filters, read into and written from the state. */
import { config } from './util.js';
import { emptyFilters, filterCount, state } from './state.js';

const layersBox = document.querySelector('[data-layers]');
// The borough is always shown (it frames the map too); the other filters are in a collapsible section.
const boroughSelect = document.getElementById('filter-borough');
const filtersBox = document.querySelector('[data-filters]');
const countLine = document.querySelector('[data-filter-count]');

function ticked(name) {
  return [...filtersBox.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
}

/** The state as the form says it. */
export function readControls() {
  state.layers = new Set([...layersBox.querySelectorAll('input[name="layer"]:checked')].map((i) => i.value));
  const f = emptyFilters();
  f.borough = boroughSelect.value;
  f.status = ticked('status');
  for (const spec of config.specs.filter((s) => s.kind)) {
    const chosen = ticked(`subtype-${spec.collection}`);
    if (chosen.length) {
      f.subtypes[spec.collection] = chosen;
    }
  }
  f.wayleave = ticked('wayleave-status');
  f.pipeline = ticked('pipeline-status');
  state.filters = f;
  showCount();
}

/** The form as the state says it (after a link was opened). */
export function writeControls() {
  for (const input of layersBox.querySelectorAll('input[name="layer"]')) {
    input.checked = state.layers.has(input.value);
  }
  const f = state.filters;
  boroughSelect.value = f.borough;
  const tick = (name, values) => {
    for (const input of filtersBox.querySelectorAll(`input[name="${name}"]`)) {
      input.checked = values.includes(input.value);
    }
  };
  tick('status', f.status);
  for (const spec of config.specs.filter((s) => s.kind)) {
    tick(`subtype-${spec.collection}`, f.subtypes[spec.collection] || []);
  }
  tick('wayleave-status', f.wayleave);
  tick('pipeline-status', f.pipeline);
  showCount();
  if (filterCount() - (f.borough ? 1 : 0)) {
    document.querySelector('[data-filters-section]').open = true;
  }
}

function showCount() {
  const n = filterCount() - (state.filters.borough ? 1 : 0);
  countLine.textContent = n ? `(${n} set)` : '';
}

/** Call `onLayers()` when a layer is switched, `onFilters(what)` when a filter changes. */
export function watchControls(onLayers, onFilters) {
  layersBox.addEventListener('change', () => {
    readControls();
    onLayers();
  });
  boroughSelect.addEventListener('change', () => {
    readControls();
    onFilters('borough');
  });
  filtersBox.addEventListener('change', () => {
    readControls();
    onFilters('filter');
  });
  filtersBox.querySelector('[data-filters-clear]').addEventListener('click', () => {
    state.filters = emptyFilters();
    writeControls();
    onFilters('clear');
  });
}
