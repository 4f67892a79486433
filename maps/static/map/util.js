/* What every module of the map shares: the page's configuration, DOM building, words and numbers.
 *
 * The configuration is the JSON maps/web_map.py puts in #map-config: layer specs, the borough
 * outlines and counts, the vocabularies, zoom thresholds and the basemap (or none).
 */
import { el } from '../app/app.js';

export const config = JSON.parse(document.getElementById('map-config').textContent);
export const prefix = config.prefix;

/** The specs by collection id, and the layer that draws each asset kind. */
export const specs = Object.fromEntries(config.specs.map((s) => [s.collection, s]));
export const KIND_LAYER = {street_furniture: 'street_furniture', public_building: 'public_buildings', duct: 'ducts'};
export const ASSET_LAYERS = config.specs.filter((s) => s.kind).map((s) => s.collection);
export const CLUSTER_LAYERS = config.specs.filter((s) => s.clusters).map((s) => s.collection);

const names = Object.fromEntries(config.boroughs.features.map((f) => [f.properties.code, f.properties.name]));

export function boroughName(code) {
  return names[code] || code || '';
}

/** "1,234" (en-GB), with `digits` decimals at most. */
export function number(n, digits = 0) {
  return Number(n).toLocaleString('en-GB', {maximumFractionDigits: digits});
}

/** "5 Mar 2026" from an ISO date or date-time (the day as written: no time zone shifts it). */
export function date(iso) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso || '');
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  return m ? `${Number(m[3])} ${months[Number(m[2]) - 1]} ${m[1]}` : '';
}

/** The label of a subtype of a kind ("Lamp post"), without its explanation in brackets. */
export function subtypeLabel(kind, code) {
  const label = (config.vocabulary.subtypes[kind] || {})[code] || code || '';
  return label.replace(/ \(.*\)$/, '');
}

export function statusLabel(code) {
  return config.vocabulary.statuses[code] || code || '';
}

export function wayleaveStatusLabel(code) {
  return config.vocabulary.wayleaveStatuses[code] || code || '';
}

/** The status group of a wayleave status: {label, color, statuses}. */
export function wayleaveGroup(code) {
  return config.vocabulary.wayleaveGroups.find((g) => g.statuses.includes(code)) || {label: '', color: '#6c757d'};
}

export { el };

/** A swatch for the legend: `shape` dot, square, line, dashed, outline or circle. */
export function swatch(color, shape = 'dot') {
  return el('span', {class: `app-swatch app-swatch--${shape}`, style: {'--swatch': color}, 'aria-hidden': 'true'});
}

/** The tile layers of ``tileLayers`` that are on the map and still loading tiles at this zoom.
 *
 * A GridLayer zoomed out of its minZoom..maxZoom while loading keeps ``isLoading()`` true until it
 * is back in range (Leaflet 1.9 fires no 'load' then), so a layer out of range is not counted.
 */
export function loadingTiles(map, tileLayers) {
  const zoom = map.getZoom();
  return tileLayers.filter((layer) => map.hasLayer(layer) && layer.isLoading()
    && zoom >= (layer.options.minZoom ?? 0) && zoom <= (layer.options.maxZoom ?? Infinity));
}

/** Run ``fn`` once, when none of ``tileLayers`` is loading (at once if none is; after 5 s at the latest). */
export function afterTiles(map, tileLayers, fn) {
  let done = false;
  const once = () => {
    if (!done) {
      done = true;
      fn();
    }
  };
  const busy = loadingTiles(map, tileLayers);
  let left = busy.length;
  if (!left) {
    once();
    return;
  }
  for (const layer of busy) {
    layer.once('load', () => {
      left -= 1;
      if (!left) {
        once();
      }
    });
  }
  setTimeout(once, 5000);  // a layer taken off or zoomed out of range while loading fires no 'load'
}

/** Wait `ms` after the last call before running `fn`. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** The CSV text of a download as rows of objects (the header names the fields; quotes honoured). */
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i += 1;
      } else if (c === '"') {
        quoted = false;
      } else {
        cell += c;
      }
    } else if (c === '"') {
      quoted = true;
    } else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') {
        i += 1;
      }
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else {
      cell += c;
    }
  }
  if (cell !== '' || row.length) {
    row.push(cell);
    rows.push(row);
  }
  const [header, ...body] = rows;
  return (body || []).filter((r) => r.length === header.length).map(
    (r) => Object.fromEntries(header.map((h, n) => [h, r[n]])));
}
