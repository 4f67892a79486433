/* The small map of an OGC API page (a page of items, or one item).
 *
 * The features are the page's own, from its JSON island (#ogc-features), in CRS84; the table
 * beside the map lists the same ones, so the map adds no information of its own. Tooltips are
 * built with el() (text, never HTML); selecting a feature opens its page.
 */
import { el } from './app.js';

const holder = document.getElementById('ogc-map');
const data = JSON.parse(document.getElementById('ogc-features').textContent);
const map = L.map(holder, {keyboard: true, scrollWheelZoom: false}).setView([51.5074, -0.1278], 10);
const {label, itemBase, prefix} = holder.dataset;

const layer = L.geoJSON(data, {
  style: () => ({color: '#12385b', weight: 3, fillColor: '#2a9d8f', fillOpacity: 0.25}),
  pointToLayer: (feature, latlng) => L.circleMarker(latlng, {
    radius: 6, color: '#12385b', weight: 2, fillColor: '#2a9d8f', fillOpacity: 0.9,
  }),
  onEachFeature: (feature, shape) => {
    const name = (label && feature.properties[label]) || `Feature ${feature.id}`;
    shape.bindTooltip(el('span', {class: 'app-ogc-tooltip'}, String(name)));
    if (itemBase) shape.on('click', () => location.assign(`${itemBase}${encodeURIComponent(feature.id)}?f=html`));
  },
}).addTo(map);

const bounds = layer.getBounds();
if (bounds.isValid()) map.fitBounds(bounds, {maxZoom: 16, padding: [16, 16]});

if ('boroughs' in holder.dataset) {
  // The boroughs' outlines for a sense of place (there is no base map).
  fetch(`${prefix}/collections/boroughs/items?limit=100`, {headers: {Accept: 'application/geo+json'}})
    .then((r) => (r.ok ? r.json() : null))
    .then((boroughs) => {
      if (boroughs) L.geoJSON(boroughs, {style: {color: '#505a5f', weight: 1, fill: false}, interactive: false}).addTo(map).bringToBack();
    })
    .catch(() => {});
}

// The filter form sends only what is filled in: an empty limit or bbox would be a 400 from the API.
const filters = document.querySelector('[data-filters]');
if (filters) {
  filters.addEventListener('submit', () => {
    for (const field of filters.elements) {
      if (field.name && field.value.trim() === '') field.disabled = true;
    }
  });
  // Coming back (bfcache) shows the fields as they were.
  window.addEventListener('pageshow', () => {
    for (const field of filters.elements) field.disabled = false;
  });
}
