/* What the map shows, in one object, and the view in the URL's hash so a link shows a colleague the same.
 *
 *   #map=<zoom>/<lat>/<lng>&layers=boroughs,wards,...&borough=E09000007&status=in_service
 *   &sub.street_furniture=lamp_post,bus_stop&wayleave=requested&pipeline=Live&report=12
 *
 * The hash never holds a key or anything personal: only the view, the layers and the filters.
 */
import { config, specs } from './util.js';

const DEFAULT_LAYERS = ['boroughs', 'wards', ...config.specs.filter((s) => s.show).map((s) => s.collection)];
const KNOWN_LAYERS = new Set(['boroughs', 'wards', ...Object.keys(specs)]);

export function emptyFilters() {
  return {borough: '', status: [], subtypes: {}, wayleave: [], pipeline: []};
}

export const state = {
  layers: new Set(DEFAULT_LAYERS),
  filters: emptyFilters(),
  report: '',
};

function list(value, allowed) {
  return (value || '').split(',').map((v) => v.trim()).filter((v) => v && (!allowed || allowed.has(v)));
}

/** The view and state a hash names; null members for what it does not say. */
export function parseHash(hash) {
  const params = new URLSearchParams((hash || '').replace(/^#/, ''));
  const out = {view: null, layers: null, filters: emptyFilters(), report: ''};
  const m = /^(\d{1,2}(?:\.\d+)?)\/(-?\d{1,2}(?:\.\d+)?)\/(-?\d{1,3}(?:\.\d+)?)$/.exec(params.get('map') || '');
  if (m) {
    out.view = {zoom: Number(m[1]), lat: Number(m[2]), lng: Number(m[3])};
  }
  if (params.has('layers')) {
    out.layers = new Set(list(params.get('layers'), KNOWN_LAYERS));
  }
  const vocabulary = config.vocabulary;
  const borough = params.get('borough') || '';
  out.filters.borough = /^E09000\d{3}$/.test(borough) ? borough : '';
  out.filters.status = list(params.get('status'), new Set(Object.keys(vocabulary.statuses)));
  for (const spec of config.specs.filter((s) => s.kind)) {
    const chosen = list(params.get(`sub.${spec.collection}`), new Set(Object.keys(vocabulary.subtypes[spec.kind])));
    if (chosen.length) {
      out.filters.subtypes[spec.collection] = chosen;
    }
  }
  out.filters.wayleave = list(params.get('wayleave'), new Set(Object.keys(vocabulary.wayleaveStatuses)));
  out.filters.pipeline = list(params.get('pipeline'), new Set(vocabulary.pipelineStatuses));
  out.report = /^\d{1,12}$/.test(params.get('report') || '') ? params.get('report') : '';
  return out;
}

/** The hash of a view and the state. */
export function formatHash(view) {
  const params = new URLSearchParams();
  params.set('map', `${view.zoom}/${view.lat.toFixed(5)}/${view.lng.toFixed(5)}`);
  params.set('layers', [...state.layers].join(','));
  const f = state.filters;
  if (f.borough) {
    params.set('borough', f.borough);
  }
  if (f.status.length) {
    params.set('status', f.status.join(','));
  }
  for (const [collection, chosen] of Object.entries(f.subtypes)) {
    if (chosen.length) {
      params.set(`sub.${collection}`, chosen.join(','));
    }
  }
  if (f.wayleave.length) {
    params.set('wayleave', f.wayleave.join(','));
  }
  if (f.pipeline.length) {
    params.set('pipeline', f.pipeline.join(','));
  }
  if (state.report) {
    params.set('report', state.report);
  }
  // Commas and slashes read better unescaped, and are safe in a fragment.
  return '#' + params.toString().replace(/%2C/g, ',').replace(/%2F/g, '/');
}

/** The tile query of a layer's filters ("?borough=…&status=…"), "" for none. */
export function layerQuery(collection) {
  const f = state.filters;
  const params = new URLSearchParams();
  if (f.borough) {
    params.set('borough', f.borough);
  }
  const spec = specs[collection];
  if (spec && spec.kind) {
    if (f.status.length) {
      params.set('status', f.status.join(','));
    }
    if ((f.subtypes[collection] || []).length) {
      params.set('subtype', f.subtypes[collection].join(','));
    }
  } else if (collection === 'wayleaves' && f.wayleave.length) {
    params.set('status', f.wayleave.join(','));
  } else if (collection === 'pipeline_projects' && f.pipeline.length) {
    params.set('status', f.pipeline.join(','));
  }
  const query = params.toString().replace(/%2C/g, ',');
  return query ? `?${query}` : '';
}

/** How many filters are set (for the Filters heading). */
export function filterCount() {
  const f = state.filters;
  return (f.borough ? 1 : 0) + f.status.length + Object.values(f.subtypes).reduce((n, v) => n + v.length, 0) +
    f.wayleave.length + f.pipeline.length;
}
