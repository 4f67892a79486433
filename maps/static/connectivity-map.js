/* The GLA connectivity web map (/map): the page's entry module.
 *
 * maps/web_map.py renders the page (maps/pages/templates/map.html) with its configuration in
 * #map-config; Leaflet and Leaflet.VectorGrid are loaded before this module as classic scripts.
 * The modules in ./map/ draw the place context (places.js), the asset layers by zoom
 * (layers.js), the legend, the details panel, the search box and a coverage report; state.js
 * keeps what is shown and puts it in the URL's hash. The sign-in is the app's (../app/app.js):
 * the key stays in this tab's sessionStorage and goes only to this app's own endpoints.
 */
import { onCaller } from './app/app.js';
import { afterTiles, config, debounce, loadingTiles } from './map/util.js';
import { formatHash, parseHash, state } from './map/state.js';
import { createPlaces, drawPlaces, placeAll, whereAmI } from './map/places.js';
import { clearHighlight, createLayers, drawLayers, modeAt } from './map/layers.js';
import { drawLegend } from './map/legend.js';
import { onClose, onZoomTo, refreshDetails, showSelection } from './map/details.js';
import { onChoose } from './map/search.js';
import { readControls, watchControls, writeControls } from './map/controls.js';
import { listPriorities, listReports, loadReport, onReport, reportLayers, setSummary } from './map/coverage.js';

const PANES = {places: 390, coverage: 420, assets: 450, sites: 455, clusters: 460, labels: 610, priorities: 640};
const ZOOM_FOR = {postcode: 17, asset: 18, project: 17};

function createMap() {
  const map = L.map('map', {minZoom: 8, maxZoom: config.maxZoom, zoomSnap: 1, keyboard: true});
  for (const [name, z] of Object.entries(PANES)) {
    const pane = map.createPane(name);
    pane.style.zIndex = String(z);
    // Only drawn features take clicks: a tile's empty area lets them through to what is below.
    pane.style.pointerEvents = 'none';
  }
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution(config.attribution);
  if (config.basemap) {
    L.tileLayer(config.basemap.url, {attribution: config.basemap.attribution, maxZoom: config.maxZoom, maxNativeZoom: 19})
      .addTo(map);
  } else {
    map.getContainer().classList.add('app-map--plain');
  }
  L.control.scale({metric: true, imperial: false, position: 'bottomleft'}).addTo(map);
  return map;
}

function frame(map, bounds) {
  map.fitBounds([[bounds[0], bounds[1]], [bounds[2], bounds[3]]]);
}

function start() {
  const map = createMap();
  const select = (selection) => showSelection(selection);
  const places = createPlaces(map, select);
  const layers = createLayers(map, select);
  // The wards wait for the first asset tiles: they are context, and 1.9 MB to read.
  const tileLayers = [...Object.values(layers.vector), layers.clusters];
  places.afterTiles = (fn) => afterTiles(map, tileLayers, fn);
  const view = {report: null, reportLayer: null, pin: null};
  onZoomTo((bounds) => frame(map, bounds));
  onClose(clearHighlight);

  const writeHash = () => {
    const c = map.getCenter();
    const hash = formatHash({zoom: map.getZoom(), lat: c.lat, lng: c.lng});
    if (hash !== window.location.hash) {
      window.history.replaceState(null, '', window.location.pathname + window.location.search + hash);
    }
  };
  const redraw = () => {
    drawLayers(layers);
    drawPlaces(places);
    drawLegend(map.getZoom(), places.current, view.report);
    writeHash();
    map.getContainer().dataset.mode = modeAt(map.getZoom());
  };

  const apply = (parsed) => {
    if (parsed.layers) {
      state.layers = parsed.layers;
    }
    state.filters = parsed.filters;
    state.report = parsed.report;
    writeControls();
  };
  const initial = parseHash(window.location.hash);
  apply(initial);
  if (!window.location.hash && config.selected) {
    state.filters.borough = config.selected;
    writeControls();
  }
  if (initial.view) {
    map.setView([initial.view.lat, initial.view.lng], initial.view.zoom);
  } else {
    frame(map, config.frame);
  }
  readControls();

  map.on('zoomend', redraw);
  layers.clusters.on('load', () => placeAll(places));
  map.on('moveend', debounce(() => {
    placeAll(places);
    writeHash();
  }, 100));
  window.addEventListener('hashchange', () => {
    const parsed = parseHash(window.location.hash);
    apply(parsed);
    readControls();
    if (parsed.view) {
      map.setView([parsed.view.lat, parsed.view.lng], parsed.view.zoom);
    }
    chooseReport(state.report, false);
    redraw();
  });

  watchControls(redraw, (what) => {
    if (what === 'borough') {
      const target = config.boroughs.features.find((f) => f.properties.code === state.filters.borough);
      frame(map, target ? target.properties.bounds : config.londonBounds);
    }
    redraw();
    refreshDetails();
  });

  async function chooseReport(id, move) {
    state.report = id;
    if (view.reportLayer) {
      map.removeLayer(view.reportLayer);
      view.reportLayer = null;
    }
    view.report = null;
    places.report = null;
    listPriorities(null);
    setSummary(id ? 'Loading the report…' : '');
    if (id) {
      try {
        const report = await loadReport(id);
        if (state.report !== id) {
          return;
        }
        view.report = report;
        places.report = report;
        view.reportLayer = reportLayers(report).addTo(map);
        setSummary(report.text);
        listPriorities(report, (q) => {
          map.setView([Number(q.lat), Number(q.lon)], Math.max(map.getZoom(), 16));
          select({kind: 'priority', priority: q});
        });
        const bounds = view.reportLayer.getBounds();
        if (move && bounds.isValid()) {
          map.fitBounds(bounds, {maxZoom: 14});
        }
      } catch (error) {
        setSummary(`The report could not be shown (${error.message}).`);
      }
    }
    redraw();
  }
  onReport((id) => chooseReport(id, true));

  onChoose((place) => {
    if (place.layer && !state.layers.has(place.layer)) {
      state.layers.add(place.layer);
      writeControls();
    }
    if (place.bbox && place.kind !== 'asset') {
      map.fitBounds([[place.bbox[1], place.bbox[0]], [place.bbox[3], place.bbox[2]]], {maxZoom: 16});
    } else if (place.bbox) {
      map.fitBounds([[place.bbox[1], place.bbox[0]], [place.bbox[3], place.bbox[2]]], {maxZoom: ZOOM_FOR.asset});
    } else {
      map.setView([place.lat, place.lon], ZOOM_FOR[place.kind] || 16);
    }
    if (view.pin) {
      map.removeLayer(view.pin);
    }
    view.pin = L.circleMarker([place.lat, place.lon], {
      pane: 'priorities', radius: 14, color: '#0b0c0c', weight: 3, fill: false, interactive: false, className: 'app-pin',
    }).addTo(map);
    redraw();
    showSelection({kind: 'place', place});
  });

  whereAmI(map, document.querySelector('[data-where]'));
  redraw();

  onCaller(async () => {
    const reports = await listReports();
    if (state.report && reports.some((r) => String(r.id) === state.report) && !view.report) {
      chooseReport(state.report, false);
    }
    refreshDetails();
  });

  // Handles for people debugging in the console, and for the browser tests.
  window.connectivityMap = {map, layers: layers.vector, clusters: layers.clusters, boroughs: places.boroughs,
    places, state, config, view, loading: () => loadingTiles(map, tileLayers).length > 0};
}

start();
