/* Place context from the shipped data: borough outlines (a choropleth to zoom 11), their names,
 * the wards with theirs from zoom 12, and "where am I" for the map's centre.
 *
 * Labels are markers in their own pane that never take a click; after every move they are placed
 * in priority order (boroughs before wards, larger first) and any that would overlap one already
 * placed is hidden, so names never pile up.
 */
import { api } from '../app/app.js';
import { ASSET_LAYERS, KIND_LAYER, boroughName, config, debounce, el, number } from './util.js';
import { state } from './state.js';

/** A colour-blind-safe sequential scale (ColorBrewer YlGnBu), light to dark. */
export const SHADES = ['#ffffcc', '#a1dab4', '#41b6c4', '#2c7fb8', '#253494'];
const SHARE_SHADES = ['#f7fcf5', '#c7e9c0', '#74c476', '#31a354', '#006d2c'];
const areas = Object.fromEntries(config.boroughs.features.map((f) => [f.properties.code, f.properties.area_km2]));

/** Live assets per borough for the asset layers that are on and the filters that are set. */
export function boroughCounts() {
  const matrix = config.counts;
  const counts = Object.fromEntries(Object.keys(areas).map((code) => [code, 0]));
  if (!matrix) {
    return counts;
  }
  const f = state.filters;
  for (const [b, k, s, st, n] of matrix.rows) {
    const layer = KIND_LAYER[matrix.kinds[k]];
    if (!state.layers.has(layer)) {
      continue;
    }
    if (f.status.length && !f.status.includes(matrix.statuses[st])) {
      continue;
    }
    const subtypes = f.subtypes[layer] || [];
    if (subtypes.length && !subtypes.includes(matrix.subtypes[s])) {
      continue;
    }
    const code = matrix.boroughs[b];
    counts[code] = (counts[code] || 0) + n;
  }
  return counts;
}

function nice(value) {
  if (value <= 0) {
    return 0;
  }
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return Math.round(value / magnitude * 2) / 2 * magnitude;
}

/** Class breaks (4 upper bounds of 5 classes) at the quintiles of the values, rounded to read well. */
export function breaks(values) {
  const sorted = values.filter((v) => v > 0).sort((a, b) => a - b);
  if (!sorted.length) {
    return [];
  }
  const cuts = [0.2, 0.4, 0.6, 0.8].map((q) => nice(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]));
  return [...new Set(cuts)].filter((v) => v > 0);
}

export function shade(value, cuts, shades = SHADES) {
  let i = 0;
  while (i < cuts.length && value > cuts[i]) {
    i += 1;
  }
  return shades[Math.min(i, shades.length - 1)];
}

/** What the choropleth shows: densities (or a report's covered shares), their classes, and whether it is on. */
export function choropleth(report) {
  if (report && report.shares) {
    const cuts = [0.2, 0.4, 0.6, 0.8];
    return {mode: 'share', values: report.shares, cuts, shades: SHARE_SHADES, on: true};
  }
  const counts = boroughCounts();
  const densities = Object.fromEntries(Object.entries(counts).map(([c, n]) => [c, areas[c] ? n / areas[c] : 0]));
  const on = ASSET_LAYERS.some((l) => state.layers.has(l));
  return {mode: 'density', counts, values: densities, cuts: breaks(Object.values(densities)), shades: SHADES, on};
}

/** A long name on two lines, broken at the space nearest its middle ("Kensington / and Chelsea"). */
export function nameLines(name) {
  if (name.length <= 11 || !name.includes(' ')) {
    return [name];
  }
  const spaces = [...name.matchAll(/ /g)].map((m) => m.index);
  const cut = spaces.reduce((best, i) => (Math.abs(i - name.length / 2) < Math.abs(best - name.length / 2) ? i : best));
  return [name.slice(0, cut), name.slice(cut + 1)];
}

function labelIcon(className, lines) {
  const [name, ...more] = lines;
  const box = el('span', {class: 'app-label__box'},
    ...nameLines(name).map((line) => el('span', {class: 'app-label__name', text: line})),
    ...more.map((line) => el('span', {class: 'app-label__more', text: line})));
  return L.divIcon({className: `app-label ${className}`, html: box, iconSize: null});
}

/** Hide every label that would overlap one placed before it, or that is outside the map.
 *
 * A label that does not fit is tried once more in its compact form (the name alone, smaller)
 * before it is hidden; the count stays in the details panel.
 */
export function placeLabels(map, markers, obstacles = []) {
  const size = map.getSize();
  const frame = map.getContainer().getBoundingClientRect();
  // Clusters first: a name never covers a number.
  const placed = obstacles.map((o) => {
    const r = o.getBoundingClientRect();
    return {left: r.left - frame.left, right: r.right - frame.left, top: r.top - frame.top, bottom: r.bottom - frame.top};
  });
  const rect = (marker, element) => {
    // Sizes are measured once per icon (a layout each); positions come from the map, without layout.
    if (!element._labelSize) {
      const r = element.firstChild.getBoundingClientRect();
      element._labelSize = [r.width, r.height];
    }
    const [w, h] = element._labelSize;
    const p = map.latLngToContainerPoint(marker.getLatLng());
    return {left: p.x - w / 2, right: p.x + w / 2, top: p.y - h / 2, bottom: p.y + h / 2, width: w};
  };
  const fits = (r) => r.width > 0 && r.left >= 0 && r.right <= size.x && r.top >= 0 && r.bottom <= size.y &&
    !placed.some((p) => r.left < p.right + 3 && r.right > p.left - 3 && r.top < p.bottom + 2 && r.bottom > p.top - 2);
  const view = map.getBounds().pad(0.05);
  for (const marker of markers) {
    const element = marker.getElement();
    if (!element || !element.firstChild) {
      continue;
    }
    if (!view.contains(marker.getLatLng())) {
      element.classList.add('app-label--hidden');
      continue;
    }
    element.classList.remove('app-label--hidden', 'app-label--compact');
    let r = rect(marker, element);
    let show = fits(r);
    if (!show && element.querySelector('.app-label__more')) {
      element.classList.add('app-label--compact');
      element._labelSize = null;
      r = rect(marker, element);
      element._labelSize = null;  // the full form is measured again next time
      show = fits(r);
    }
    element.classList.toggle('app-label--hidden', !show);
    if (show) {
      placed.push(r);
    }
  }
  return placed.length - obstacles.length;
}

function inRing(x, y, ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i, i += 1) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if ((yi > y) !== (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) {
      inside = !inside;
    }
  }
  return inside;
}

/** The borough a point is in (client-side, from the embedded outlines), or null. */
export function boroughAt(latlng) {
  for (const f of config.boroughs.features) {
    const polygons = f.geometry.type === 'Polygon' ? [f.geometry.coordinates] : f.geometry.coordinates;
    if (polygons.some((rings) => inRing(latlng.lng, latlng.lat, rings[0]) &&
        !rings.slice(1).some((hole) => inRing(latlng.lng, latlng.lat, hole)))) {
      return f.properties;
    }
  }
  return null;
}

/** The borough outlines, labels and wards; ``onSelect({kind, properties})`` when one is clicked. */
export function createPlaces(map, onSelect) {
  const places = {map, report: null, wards: null, wardLabels: [], current: null, afterTiles: (fn) => fn()};
  places.boroughs = L.geoJSON(config.boroughs, {
    pane: 'places',
    onEachFeature(feature, layer) {
      layer.on('click', (e) => {
        L.DomEvent.stopPropagation(e);
        onSelect({kind: 'borough', properties: feature.properties, latlng: e.latlng});
      });
    },
  });
  places.boroughLabels = config.boroughs.features
    .slice().sort((a, b) => b.properties.area_km2 - a.properties.area_km2)
    .map((f) => L.marker([f.properties.label[1], f.properties.label[0]], {
      pane: 'labels', interactive: false, keyboard: false, icon: labelIcon('app-label--borough', [f.properties.name]),
      code: f.properties.code,
    }));
  places.labelLayer = L.layerGroup(places.boroughLabels);
  places.wardLabelLayer = L.layerGroup();
  return places;
}

/** Restyle the outlines and rewrite the labels for the zoom, the layers on, the filters and a report. */
export function drawPlaces(places) {
  const {map} = places;
  const zoom = map.getZoom();
  const shaded = zoom <= config.choroplethMaxZoom;
  const chart = choropleth(places.report);
  places.current = chart;
  const selected = state.filters.borough;
  const show = state.layers.has('boroughs');
  toggle(map, places.boroughs, show);
  toggle(map, places.labelLayer, show);
  places.boroughs.setStyle((f) => {
    const code = f.properties.code;
    const dimmed = selected && code !== selected;
    const fill = shaded && chart.on && !dimmed && chart.values[code] !== undefined;
    return {
      color: code === selected ? '#0b0c0c' : '#4b5563', weight: code === selected ? 3 : (shaded ? 1 : 1.6),
      opacity: 0.9, fill: true, fillColor: fill ? shade(chart.values[code], chart.cuts, chart.shades) : '#ffffff',
      fillOpacity: fill ? 0.78 : (dimmed && shaded ? 0.55 : 0.02), dashArray: null,
    };
  });
  for (const marker of places.boroughLabels) {
    const code = marker.options.code;
    const lines = [boroughName(code)];
    if (shaded && chart.on) {
      if (chart.mode === 'share') {
        if (chart.values[code] !== undefined) {
          lines.push(`${Math.round(chart.values[code] * 100)}% covered`);
        }
      } else {
        lines.push(number(chart.counts[code] || 0));
      }
    }
    marker.setIcon(labelIcon(`app-label--borough${shaded ? '' : ' app-label--quiet'}`, lines));
  }
  drawWards(places);
  placeAll(places);
}

function toggle(map, layer, on) {
  if (on && !map.hasLayer(layer)) {
    layer.addTo(map);
  } else if (!on && map.hasLayer(layer)) {
    map.removeLayer(layer);
  }
}

async function loadWards(places) {
  if (places.wards) {
    return;
  }
  // A plain fetch: the browser may keep this one (it is public and changes only with a release).
  const response = await fetch(`${config.prefix}/map/wards.geojson`, {headers: {Accept: 'application/geo+json'}});
  if (!response.ok) {
    throw new Error(`wards: ${response.status}`);
  }
  const data = await response.json();
  places.wards = L.geoJSON(data, {
    pane: 'places', interactive: false,
    style: {color: '#374151', weight: 1, opacity: 0.75, dashArray: '4 3', fill: false},
  });
  places.wardLabels = data.features
    .slice().sort((a, b) => a.properties.name.length - b.properties.name.length)
    .map((f) => L.marker([f.properties.label[1], f.properties.label[0]], {
      pane: 'labels', interactive: false, keyboard: false, icon: labelIcon('app-label--ward', [f.properties.name]),
    }));
  places.wardLabelLayer = L.layerGroup(places.wardLabels);
  drawWards(places);
  placeAll(places);
}

function drawWards(places) {
  const {map} = places;
  const on = state.layers.has('wards') && map.getZoom() >= config.wardMinZoom;
  if (on && !places.wards && !places.loadingWards) {
    // After the map's first tiles: the wards (1.9 MB of outlines) are context, the assets come first.
    places.loadingWards = true;
    const load = () => loadWards(places).catch(() => { places.loadingWards = false; });
    places.afterTiles(() => (window.requestIdleCallback || ((fn) => setTimeout(fn, 200)))(load, {timeout: 1500}));
  }
  if (places.wards) {
    toggle(map, places.wards, on);
    toggle(map, places.wardLabelLayer, on);
  }
}

/** Place the labels where no cluster is: borough names first, then ward names. */
export function placeAll(places) {
  const wards = places.map.hasLayer(places.wardLabelLayer) ? places.wardLabels : [];
  const boroughs = places.map.hasLayer(places.labelLayer) ? places.boroughLabels : [];
  const clusters = [...places.map.getContainer().querySelectorAll('.app-cluster')];
  return placeLabels(places.map, [...boroughs, ...wards], clusters);
}

/** Keep the line over the map saying where its centre is: ward, borough, nearest postcode, zoom.
 *
 * The borough and zoom are written at once after every move (from the embedded outlines); the
 * ward and postcode follow from /places/nearest, from zoom 12, once the map has stayed still.
 */
export function whereAmI(map, line) {
  let asked = 0;
  const near = debounce(async (ask, centre, place, zoom) => {
    try {
      const found = await api(`/places/nearest?lon=${centre.lng.toFixed(6)}&lat=${centre.lat.toFixed(6)}`);
      if (ask === asked) {
        const ward = found.ward ? `${found.ward} ward, ` : '';
        line.textContent = `Centre of the map: ${ward}${place}, near postcode ${found.postcode}. Zoom ${zoom}.`;
      }
    } catch (error) {
      // The line keeps the borough: the postcode is a nicety.
    }
  }, 300);
  const update = () => {
    const centre = map.getCenter();
    const zoom = map.getZoom();
    const borough = boroughAt(centre);
    const place = borough ? borough.name : 'outside London';
    const ask = ++asked;
    line.textContent = `Centre of the map: ${place}. Zoom ${zoom}.`;
    if (borough && zoom >= config.wardMinZoom) {
      near(ask, centre, place, zoom);
    }
  };
  map.on('moveend', update);
  update();
}
