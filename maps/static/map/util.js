/* What every module of the map shares: the page's configuration, DOM building, words and numbers.
 *
 * The configuration is the JSON maps/web_map.py puts in #map-config: layer specs, the borough
 * outlines and counts, the vocabularies, zoom thresholds and the basemap (or none).
 */
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

/**
 * An element with attributes and children (strings become text nodes: nothing is parsed as HTML).
 * `attrs` keys: `class`, `text`, `dataset` (object), `style` (object), `on` (events), others as attributes.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (key === 'class') {
      node.className = value;
    } else if (key === 'text') {
      node.textContent = value;
    } else if (key === 'dataset') {
      Object.assign(node.dataset, value);
    } else if (key === 'style') {
      for (const [property, setting] of Object.entries(value)) {
        if (property.startsWith('--')) {
          node.style.setProperty(property, setting);  // custom properties are not style fields
        } else {
          node.style[property] = setting;
        }
      }
    } else if (key === 'on') {
      for (const [event, handler] of Object.entries(value)) {
        node.addEventListener(event, handler);
      }
    } else {
      node.setAttribute(key, value === true ? '' : value);
    }
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

/** A swatch for the legend: `shape` dot, square, line, dashed, outline or circle. */
export function swatch(color, shape = 'dot') {
  return el('span', {class: `app-swatch app-swatch--${shape}`, style: {'--swatch': color}, 'aria-hidden': 'true'});
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
