/* The map of a coverage report (report.html), which is one file that loads nothing: Leaflet
 * and this script are inlined in it, and the map's data is the JSON in #report-data.
 *
 * Drawn from the bottom: the boroughs around the area (outlines and names, for place), the
 * area filled lightly (what is not a gap is covered), the gaps in a strong colour, the
 * Pipeline projects and the priorities numbered as in the table. No background tiles: the
 * file would have to fetch them. Every label is set as text, never as HTML.
 */
(function () {
  'use strict';

  var source = document.getElementById('report-data');
  var container = document.getElementById('report-map');
  if (!source || !container || typeof L === 'undefined') {
    return;
  }
  var data = JSON.parse(source.textContent);
  // The printable width of an A4 page with the print stylesheet's margins (180 mm in CSS pixels).
  var PRINT_WIDTH = 680;

  function text(value) {
    var span = document.createElement('span');
    span.textContent = value;
    return span;
  }

  function number(value) {
    return Math.round(value).toLocaleString('en-GB');
  }

  var map = L.map(container, {
    zoomSnap: 0.25,
    zoomDelta: 0.5,
    scrollWheelZoom: false, // the page scrolls; zoom with the buttons, the keyboard or a pinch
    attributionControl: false
  });
  L.control.attribution({prefix: 'Leaflet'}).addAttribution(data.attribution).addTo(map);
  L.control.scale({imperial: false}).addTo(map);
  map.createPane('labels').style.zIndex = 450;
  map.createPane('priorities').style.zIndex = 650;

  var overlays = {};

  var boroughs = L.featureGroup();
  var labels = [];
  (data.boroughs || []).forEach(function (b) {
    L.geoJSON(b.geometry, {
      interactive: false,
      style: {color: '#505a5f', weight: 1, opacity: 0.9, fill: false}
    }).addTo(boroughs);
    labels.push(L.marker([b.lat, b.lon], {
      pane: 'labels', interactive: false, keyboard: false,
      icon: L.divIcon({className: 'report-borough-label', html: text(b.name), iconSize: null})
    }).addTo(boroughs));
  });
  boroughs.addTo(map);
  overlays['Boroughs'] = boroughs;

  // Names that would overlap one drawn before them (the area's own boroughs come first, then
  // the largest) are hidden until a zoom makes room.
  function declutter() {
    var placed = [];
    labels.forEach(function (marker) {
      var name = marker.getElement() && marker.getElement().firstChild;
      if (!name) {
        return;
      }
      name.style.visibility = '';
      var r = name.getBoundingClientRect();
      var clash = placed.some(function (q) {
        return r.left < q.right + 6 && r.right + 6 > q.left && r.top < q.bottom + 2 && r.bottom + 2 > q.top;
      });
      if (clash) {
        name.style.visibility = 'hidden';
      } else {
        placed.push(r);
      }
    });
  }
  map.on('zoomend moveend', declutter);

  var area = null;
  if (data.area) {
    area = L.geoJSON(data.area, {
      interactive: false,
      style: {color: '#0b0c0c', weight: 2, fillColor: '#85c5b5', fillOpacity: 0.45}
    }).addTo(map);
    overlays[data.labels.covered] = area;
  }

  var gaps = L.geoJSON(data.gaps || [], {
    style: {color: '#942514', weight: 0.6, fillColor: '#d4351c', fillOpacity: 0.8},
    onEachFeature: function (feature, layer) {
      var p = feature.properties;
      layer.bindTooltip(text('Gap ' + p.gap_id + ': ' + number(p.households) + ' households, ' +
        (p.area_m2 / 1e4).toFixed(1) + ' ha'), {sticky: true});
    }
  }).addTo(map);
  overlays[data.labels.gaps] = gaps;

  var projects = L.geoJSON((data.projects || []).map(function (p) {
    return {type: 'Feature', geometry: p.geometry, properties: {title: p.title}};
  }), {
    pointToLayer: function (feature, latlng) {
      return L.circleMarker(latlng, {radius: 6, color: '#6f2c91', weight: 2, fillColor: '#d6b4e8', fillOpacity: 1});
    },
    style: {color: '#6f2c91', weight: 2, fillColor: '#d6b4e8', fillOpacity: 0.5},
    onEachFeature: function (feature, layer) {
      layer.bindTooltip(text('Pipeline project: ' + feature.properties.title));
    }
  });
  if ((data.projects || []).length) {
    projects.addTo(map);
    overlays[data.labels.projects] = projects;
  }

  var priorities = L.featureGroup();
  (data.priorities || []).forEach(function (p) {
    var icon = L.divIcon({
      className: 'report-priority-marker', html: text(String(p.rank)), iconSize: [26, 26], iconAnchor: [13, 13]
    });
    // Not keyboard stops: markers may sit closer than a target's 24 px (WCAG 2.5.8), and the
    // table beside the map says the same in order.
    L.marker([p.lat, p.lon], {icon: icon, pane: 'priorities', title: p.title, keyboard: false})
      .bindTooltip(text(p.title), {direction: 'top', offset: [0, -12]})
      .addTo(priorities);
  });
  priorities.addTo(map);
  overlays[data.labels.priorities] = priorities;

  L.control.layers(null, overlays, {collapsed: true}).addTo(map);

  var bounds = area ? area.getBounds() : gaps.getBounds();
  if (bounds.isValid()) {
    map.fitBounds(bounds, {padding: [12, 12]});
  } else {
    map.setView([51.4893, -0.088], 10);
  }
  declutter(); // the layers are on the map once it has its first view

  // Printed, the map keeps the view a person sees and is scaled to the page's width (the
  // print stylesheet reads these): a map laid out again for print would lose its centre.
  function sizeForPrint() {
    var width = container.clientWidth || PRINT_WIDTH;
    container.style.setProperty('--report-map-width', width + 'px');
    container.style.setProperty('--report-print-zoom', String(Math.min(1, PRINT_WIDTH / width)));
  }
  sizeForPrint();
  window.addEventListener('resize', sizeForPrint);
  window.connectivityReport = {map: map, layers: overlays};
}());
