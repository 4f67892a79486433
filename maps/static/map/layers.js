/* The asset, wayleave and Pipeline layers, by zoom:
 *
 * - to zoom 11 (choroplethMaxZoom) the assets are the borough choropleth (places.js), nothing here;
 * - from zoom 12 to the raw zoom, grid clusters: one symbol per 128 px cell (2 x 2 a tile), kept
 *   inside its cell, 22-44 px across by the log of its count and labelled with it, so symbols never
 *   overlap and never cross a tile's edge (no seams); ducts as merged lines;
 * - from the raw zoom (13) each asset from the vector tiles (on canvas), coloured by subtype.
 * Wayleaves and Pipeline projects are drawn at every zoom (their tiles carry each one).
 */
import { CLUSTER_LAYERS, config, el, number } from './util.js';
import { layerQuery, state } from './state.js';

// Two fixes to VectorGrid 1.3.0's symbolizers, made where they are created:
// - Leaflet >= 1.8 treats a clicked circle of radius <= 10 px as a marker and asks it for
//   getLatLng(), which VectorGrid's point symbolizers cannot answer: the click throws "reading
//   'lat'" (Leaflet.VectorGrid#267, #168). Without the method Leaflet takes the mouse position.
// - A symbolizer keeps the feature's properties but drops its MVT feature id, where the tiles
//   carry the asset id; keep it as `featureId`.
// - Its canvas tiles call L.DomEvent.fakeStop, which Leaflet 1.8 removed (Leaflet.VectorGrid#274):
//   mark the event handled, as it did.
if (L.DomEvent && !L.DomEvent.fakeStop) {
  L.DomEvent.fakeStop = (e) => {
    e._stopped = true;
  };
}
if (L.VectorGrid && !L.VectorGrid.prototype._connectivityPatched) {
  const createLayer = L.VectorGrid.prototype._createLayer;
  L.VectorGrid.prototype._createLayer = function patched(feat, ...rest) {
    const layer = createLayer.call(this, feat, ...rest);
    if (feat.type === 1) {
      layer.getLatLng = null;
    }
    layer.featureId = feat.id;
    return layer;
  };
  L.VectorGrid.prototype._connectivityPatched = true;
}

export const CLUSTER_COLOR = '#12385b';
/** A cluster cell on the map: 2 x 2 a tile (the server's 4 x 4 cells merged), so names fit between. */
const CELL = 128;

/** What the map draws its assets as at a zoom: the borough choropleth, clusters, or each asset. */
export function modeAt(zoom) {
  if (zoom <= config.choroplethMaxZoom) {
    return 'boroughs';
  }
  return zoom < config.rawZoom ? 'clusters' : 'assets';
}

/** Aggregated features (below the raw zoom) have no subtype: a count, and a length for lines. */
export function isSummary(p) {
  return p.subtype === undefined && (p.count !== undefined || p.length_m !== undefined);
}

/** At most the tiles' buffer (64 of 4,096 units: 4 px of a 256 px tile), so a point near a tile's
 * edge is drawn whole by both tiles and no symbol is ever cut at a seam. */
const POINT_RADIUS = 4;

/** The VectorGrid style function of one layer (`spec` is a LayerSpec as JSON). */
export function vectorStyle(spec) {
  return (p, zoom) => {
    const color = (spec.color_by && spec.palette[p[spec.color_by]]) || spec.color;
    if (spec.geometry === 'line') {
      const fine = p.subtype === 'sub_duct';
      return {weight: isSummary(p) ? 2 : (zoom >= 16 ? 4 : 3) - (fine ? 1 : 0), color, opacity: 0.9, lineCap: 'round',
        dashArray: fine ? '6 4' : null};
    }
    if (spec.collection === 'wayleaves') {
      return {radius: POINT_RADIUS, weight: 3, color, opacity: 1, fill: true, fillColor: '#ffffff', fillOpacity: 0.6};
    }
    if (spec.geometry === 'polygon') {
      return {weight: 1, color, opacity: 0.95, fill: true, fillColor: color, fillOpacity: 0.5, radius: POINT_RADIUS};
    }
    const dashed = spec.collection === 'pipeline_projects' && p.placement === 'borough';
    return {radius: POINT_RADIUS, weight: 1, color: dashed ? '#6b0040' : '#ffffff', opacity: 1, fill: true,
      fillColor: color, fillOpacity: 0.95};
  };
}

function tileUrl(template, collection) {
  return template.replace('{collection}', collection) + layerQuery(collection);
}

/** A cluster symbol's radius: 11 px for one asset to 22 px for 5,000 or more (a small range). */
export function clusterRadius(count) {
  return Math.max(11, Math.min(22, 11 + 3 * Math.log10(Math.max(1, count))));
}

function shortCount(count) {
  return count < 10000 ? number(count) : `${number(Math.round(count / 1000))}k`;
}

/** Cells of the tiles of several layers summed into cells of `size` px: counts added, positions weighted by them. */
export function mergeCells(tiles, size = CELL) {
  const cells = new Map();
  for (const tile of tiles) {
    const per = Math.max(1, Math.round(size * (tile.cells_per_side || 4) / 256));
    for (const c of tile.cells || []) {
      const i = Math.floor(c.i / per);
      const j = Math.floor(c.j / per);
      const key = `${i}/${j}`;
      const found = cells.get(key) || {i, j, count: 0, sx: 0, sy: 0};
      found.count += c.count;
      found.sx += c.x * c.count;
      found.sy += c.y * c.count;
      cells.set(key, found);
    }
  }
  return [...cells.values()].map((c) => ({i: c.i, j: c.j, count: c.count, x: c.sx / c.count, y: c.sy / c.count}));
}

const ClusterLayer = L.GridLayer.extend({
  createTile(coords, done) {
    const tile = el('div', {class: 'app-cluster-tile', 'aria-hidden': 'true'});
    const layers = CLUSTER_LAYERS.filter((l) => state.layers.has(l));
    const url = (l) => tileUrl(config.clusterUrl, l).replace('{z}', coords.z).replace('{x}', coords.x).replace('{y}', coords.y);
    Promise.all(layers.map((l) => fetch(url(l)).then((r) => (r.ok ? r.json() : {cells: []}))))
      .then((tiles) => {
        for (const c of mergeCells(tiles)) {
          tile.append(this.symbol(coords, c));
        }
        done(null, tile);
      })
      .catch((error) => done(error, tile));
    return tile;
  },

  symbol(coords, c) {
    const r = clusterRadius(c.count);
    const x = Math.max(c.i * CELL + r + 2, Math.min((c.i + 1) * CELL - r - 2, c.x));
    const y = Math.max(c.j * CELL + r + 2, Math.min((c.j + 1) * CELL - r - 2, c.y));
    const symbol = el('span', {
      class: 'app-cluster', text: shortCount(c.count), dataset: {count: c.count},
      style: {left: `${x - r}px`, top: `${y - r}px`, width: `${2 * r}px`, height: `${2 * r}px`, lineHeight: `${2 * r}px`},
    });
    symbol.addEventListener('click', (event) => {
      L.DomEvent.stopPropagation(event);
      const at = this._map.unproject([coords.x * 256 + x, coords.y * 256 + y], coords.z);
      this._map.setView(at, Math.min(coords.z + 1, config.rawZoom));
    });
    return symbol;
  },
});

let chosen = null;

/** Mark the chosen asset: a ring over a point (drawn whole over tile edges), an outline on a line or polygon. */
function highlight(map, spec, id, feature) {
  clearHighlight();
  const layer = vectors[spec.collection];
  if (!spec.kind || id === undefined || !layer) {
    return;
  }
  if (feature && feature._point && feature._renderer) {
    const at = map.layerPointToLatLng(feature._renderer.getOffset().add(feature._point));
    const ring = L.circleMarker(at, {pane: 'priorities', radius: 9, color: '#0b0c0c', weight: 3, fill: false,
      interactive: false, className: 'app-chosen'}).addTo(map);
    chosen = {remove: () => map.removeLayer(ring)};
    return;
  }
  const style = vectorStyle(spec);
  layer.setFeatureStyle(id, (p, zoom) => ({...style(p, zoom), color: '#0b0c0c', weight: 3, opacity: 1}));
  chosen = {remove: () => layer.resetFeatureStyle(id)};
}

export function clearHighlight() {
  if (chosen) {
    chosen.remove();
    chosen = null;
  }
}

const vectors = {};

/** Every layer of this module, not yet on the map; ``onSelect(feature)`` when one is clicked. */
export function createLayers(map, onSelect) {
  const vector = vectors;
  for (const spec of config.specs) {
    const minZoom = spec.clusters ? config.rawZoom : spec.min_zoom || 0;
    // Assets are drawn on canvas: a dense raw tile holds thousands of them, which as SVG
    // elements took a second or more to draw at London scale. Features are kept by id, so
    // the one chosen can be outlined and the tests can find where each is drawn.
    const layer = L.vectorGrid.protobuf(tileUrl(config.tileUrl, spec.collection), {
      interactive: true, pane: spec.kind ? 'assets' : 'sites', minZoom, maxZoom: config.maxZoom,
      maxNativeZoom: config.maxNativeZoom, vectorTileLayerStyles: {[spec.collection]: vectorStyle(spec)},
      ...(spec.kind ? {rendererFactory: L.canvas.tile, getFeatureId: (f) => f.id} : {}),
    });
    layer.on('click', (e) => {
      L.DomEvent.stopPropagation(e);
      const p = e.layer.properties || {};
      const id = p.id !== undefined ? p.id : e.layer.featureId;
      highlight(map, spec, id, e.layer);
      onSelect({kind: 'feature', spec, properties: p, id, latlng: e.latlng});
    });
    layer.query = layerQuery(spec.collection);
    vector[spec.collection] = layer;
  }
  const clusters = new ClusterLayer({
    pane: 'clusters', minZoom: config.choroplethMaxZoom + 1, maxZoom: config.rawZoom - 1, updateWhenZooming: false,
  });
  clusters.query = '';
  return {map, vector, clusters};
}

function toggle(map, layer, on) {
  if (on && !map.hasLayer(layer)) {
    layer.addTo(map);
  } else if (!on && map.hasLayer(layer)) {
    map.removeLayer(layer);
  }
}

/** Put the layers that are on on the map, with the filters' tiles.
 *
 * A layer whose filters changed is taken off and put back, not redrawn: GridLayer.redraw() would
 * load tiles even at zooms outside the layer's minZoom..maxZoom (Leaflet 1.9 skips that check there).
 */
export function drawLayers(layers) {
  const {map} = layers;
  for (const [collection, layer] of Object.entries(layers.vector)) {
    const query = layerQuery(collection);
    if (query !== layer.query) {
      layer.query = query;
      layer.setUrl(tileUrl(config.tileUrl, collection), true);
      toggle(map, layer, false);
    }
    toggle(map, layer, state.layers.has(collection));
  }
  const on = CLUSTER_LAYERS.filter((l) => state.layers.has(l));
  const query = on.map((l) => l + layerQuery(l)).join('|');
  if (query !== layers.clusters.query) {
    layers.clusters.query = query;
    toggle(map, layers.clusters, false);
  }
  toggle(map, layers.clusters, on.length > 0);
}

