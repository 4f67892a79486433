/* The GLA connectivity web map: styles, popups, legend and borough selector.
 *
 * maps/web_map.py builds the page with folium and calls ConnectivityMap.init() once every
 * layer exists. Asset layers are Leaflet.VectorGrid layers over /tiles/{collection}/{z}/{x}/{y}.mvt:
 * raw features (id, kind, subtype, status, borough_code, name, height_m) from the raw-feature
 * zoom, aggregated features below it (points: `count` per cluster; lines: merged, `length_m`).
 */
(function () {
  'use strict';

  // Two fixes to VectorGrid 1.3.0's symbolizers, made where they are created:
  // - Leaflet >= 1.8 treats a clicked circle of radius <= 10 px as a marker and asks it for
  //   getLatLng(), which VectorGrid's point symbolizers cannot answer (they only know their tile
  //   pixel): the click throws "reading 'lat'" (Leaflet.VectorGrid#267, #168). Without the method
  //   Leaflet takes the position from the mouse event, so small points stay clickable.
  // - A symbolizer keeps the feature's properties but drops its MVT feature id, which is where
  //   the tiles carry the asset id; keep it as `featureId`.
  if (L.VectorGrid && !L.VectorGrid.prototype._connectivityPatched) {
    var createLayer = L.VectorGrid.prototype._createLayer;
    L.VectorGrid.prototype._createLayer = function (feat) {
      var layer = createLayer.apply(this, arguments);
      if (feat.type === 1) {
        layer.getLatLng = null;
      }
      layer.featureId = feat.id;
      return layer;
    };
    L.VectorGrid.prototype._connectivityPatched = true;
  }

  var CM = {};

  CM.esc = function (value) {
    return String(value === null || value === undefined ? '' : value)
      .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
  };

  CM.number = function (n, digits) {
    return Number(n).toLocaleString('en-GB', {maximumFractionDigits: digits || 0});
  };

  // Cluster circles grow with the log of their count, from 6 px (1 asset) to 28 px.
  CM.clusterRadius = function (count) {
    return Math.min(28, 6 + 4 * Math.log10(Math.max(1, count)));
  };

  /* The style function of one asset layer. `spec` is a LayerSpec as JSON. */
  CM.vectorStyle = function (spec) {
    return function (p) {
      var color = (spec.color_by && spec.palette[p[spec.color_by]]) || spec.color;
      if (spec.geometry === 'line') {
        return {weight: spec.weight || 3, color: color, opacity: 0.9, lineCap: 'round'};
      }
      if (p.count !== undefined) {
        return {
          radius: CM.clusterRadius(p.count), weight: 1, color: color, opacity: 0.9,
          fill: true, fillColor: color, fillOpacity: 0.35
        };
      }
      if (spec.geometry === 'polygon') {
        return {
          weight: 1, color: color, opacity: 0.9, fill: true, fillColor: spec.fill || color,
          fillOpacity: 0.45, radius: spec.radius || 5
        };
      }
      return {
        radius: spec.radius || 4, weight: 1, color: '#ffffff', opacity: 1,
        fill: true, fillColor: color, fillOpacity: 0.95
      };
    };
  };

  function row(label, value) {
    if (value === null || value === undefined || value === '') {
      return '';
    }
    return '<tr><th>' + CM.esc(label) + '</th><td>' + CM.esc(value) + '</td></tr>';
  }

  function vocab(ctx, name, code) {
    var table = ctx.vocabulary[name] || {};
    return table[code] || code;
  }

  // Aggregated features (below the raw zoom) have no kind: a count, and a length for lines.
  CM.isSummary = function (p) {
    return p.kind === undefined && (p.count !== undefined || p.length_m !== undefined);
  };

  CM.featurePopup = function (ctx, spec, p, id) {
    if (CM.isSummary(p)) {
      var what = p.length_m !== undefined
        ? CM.number(p.length_m / 1000, 2) + ' km' + (p.count ? ' in ' + CM.number(p.count) + ' routes' : '')
        : CM.number(p.count);
      return '<div class="cm-popup cm-summary"><h4>' + CM.esc(spec.label) + '</h4><p>' + what +
        ' here. Zoom in to see each one.</p></div>';
    }
    var kind = p.kind || spec.kind;
    var subtype = ctx.vocabulary.subtypes[kind] ? ctx.vocabulary.subtypes[kind][p.subtype] : p.subtype;
    var title = p.name || p.site_name || p.title || subtype || spec.label;
    return '<div class="cm-popup" data-asset-id="' + CM.esc(id) + '"><h4>' + CM.esc(title) + '</h4><table>' +
      row('Type', subtype) +
      row('Status', vocab(ctx, 'statuses', p.status)) +
      row('Borough', ctx.boroughNames[p.borough_code] || p.borough_code) +
      row('Height', p.height_m ? CM.number(p.height_m, 1) + ' m' : '') +
      row('Source id', p.source_id) +
      row('Days in status', p.days_in_status !== undefined ? CM.number(p.days_in_status) : '') +
      row('Organisation', p.organisation) +
      '</table><table class="cm-detail"></table>' +
      (id === undefined ? '' : '<p class="cm-id">Asset ' + CM.esc(id) + '</p>') + '</div>';
  };

  // The tiles carry what the map styles and labels by; the owner and survey come from /assets/{id}.
  function fillDetail(ctx, spec, popup, id, p) {
    var url = ctx.prefix + spec.detail_url.replace('{id}', encodeURIComponent(id));
    fetch(url, {headers: {Accept: 'application/json'}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (a) {
        var html = popup.getContent();
        if (!a || typeof html !== 'string') {
          return;
        }
        // Assets add owner and survey; wayleaves (for callers allowed to see them) add the operator.
        // Asset tiles carry only what the map draws by; the rest of the popup comes from here.
        var rows = (p.source_id === undefined
          ? row('Name', a.name) + row('Borough', ctx.boroughNames[a.borough_code] || a.borough_code) +
            row('Height', a.height_m ? CM.number(a.height_m, 1) + ' m' : '') + row('Source id', a.source_id)
          : '') +
          row('Operator', a.operator) + row('Owner', a.owner) +
          row('Survey quality', a.survey_quality) + row('Last surveyed', a.last_surveyed);
        // setContent, not the DOM: Leaflet redraws a popup from its content on update.
        popup.setContent(html.replace('<table class="cm-detail"></table>',
          '<table class="cm-detail">' + rows + '</table>'));
      })
      .catch(function () {});
  }

  CM.bindPopups = function (map, ctx, spec, layer) {
    layer.on('click', function (e) {
      var p = e.layer.properties || {};
      var id = p.id !== undefined ? p.id : e.layer.featureId;
      var summary = CM.isSummary(p);
      var popup = L.popup({maxWidth: 320})
        .setLatLng(e.latlng)
        .setContent(CM.featurePopup(ctx, spec, p, summary ? undefined : id))
        .openOn(map);
      if (!summary && id !== undefined && spec.detail_url) {
        fillDetail(ctx, spec, popup, id, p);
      }
      L.DomEvent.stopPropagation(e);
    });
  };

  function swatch(spec) {
    var shape = spec.geometry === 'line' ? 'line' : (spec.geometry === 'polygon' ? 'square' : 'dot');
    var colors = spec.color_by ? Object.keys(spec.palette).map(function (k) { return spec.palette[k]; }) : [spec.color];
    return colors.map(function (c) {
      return '<span class="cm-swatch cm-' + shape + '" style="--cm-color:' + CM.esc(c) + '"></span>';
    }).join('');
  }

  CM.legend = function (ctx) {
    var control = L.control({position: 'bottomright'});
    control.onAdd = function () {
      var div = L.DomUtil.create('div', 'cm-legend leaflet-control');
      var html = '<h3>Connectivity assets</h3><ul>';
      html += '<li data-layer="boroughs"><span class="cm-swatch cm-outline"></span>' +
        'London boroughs <span class="cm-count">' + CM.number(ctx.boroughCount) + '</span></li>';
      ctx.specs.forEach(function (spec) {
        html += '<li data-layer="' + CM.esc(spec.collection) + '">' + swatch(spec) + CM.esc(spec.label) +
          (spec.count === null ? '' : ' <span class="cm-count">' + CM.number(spec.count) + '</span>') + '</li>';
        if (spec.color_by) {
          Object.keys(spec.palette).forEach(function (code) {
            html += '<li class="cm-sub">' + swatch({geometry: spec.geometry, color: spec.palette[code]}) +
              CM.esc(vocab(ctx, spec.color_by === 'status' ? 'statuses' : spec.color_by, code)) + '</li>';
          });
        }
      });
      html += '</ul><p class="cm-note">Below zoom ' + ctx.rawZoom + ', circles are clusters sized by count.</p>';
      div.innerHTML = html;
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      return div;
    };
    return control;
  };

  CM.boroughSelector = function (map, ctx, boroughLayer) {
    var control = L.control({position: 'topright'});
    control.onAdd = function () {
      var div = L.DomUtil.create('div', 'cm-selector leaflet-control');
      var html = '<label for="cm-borough">Borough</label><select id="cm-borough"><option value="">All London</option>';
      ctx.boroughs.forEach(function (b) {
        html += '<option value="' + CM.esc(b.code) + '"' + (b.code === ctx.selected ? ' selected' : '') + '>' +
          CM.esc(b.name) + '</option>';
      });
      div.innerHTML = html + '</select>';
      var select = div.querySelector('select');
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.on(select, 'change', function () { CM.showBorough(map, ctx, boroughLayer, select.value); });
      return div;
    };
    return control;
  };

  CM.showBorough = function (map, ctx, boroughLayer, code) {
    var target = ctx.boroughs.filter(function (b) { return b.code === code; })[0];
    var b = target ? target.bounds : ctx.londonBounds;
    map.fitBounds([[b[0], b[1]], [b[2], b[3]]]);
    ctx.selected = target ? code : null;
    if (boroughLayer) {
      boroughLayer.setStyle(function (f) { return CM.boroughStyle(ctx, f); });
    }
    if (window.history && window.history.replaceState) {
      var url = new URL(window.location.href);
      if (target) { url.searchParams.set('borough', code); } else { url.searchParams.delete('borough'); }
      window.history.replaceState(null, '', url.pathname + url.search);
    }
  };

  CM.boroughStyle = function (ctx, feature) {
    var selected = feature && feature.properties && feature.properties.code === ctx.selected;
    return {
      color: selected ? '#1d3557' : '#5c677d', weight: selected ? 3 : 1.2, opacity: 0.9,
      fill: true, fillColor: '#ffffff', fillOpacity: selected ? 0.0 : 0.05
    };
  };

  /* Called once by the page, after every layer exists. */
  CM.init = function (map, ctx, layers, boroughLayer) {
    if (ctx.plain) {
      L.DomUtil.addClass(map.getContainer(), 'cm-plain');
    }
    ctx.boroughNames = {};
    ctx.boroughs.forEach(function (b) { ctx.boroughNames[b.code] = b.name; });
    ctx.specs.forEach(function (spec) {
      if (layers[spec.collection]) {
        CM.bindPopups(map, ctx, spec, layers[spec.collection]);
      }
    });
    if (boroughLayer) {
      boroughLayer.setStyle(function (f) { return CM.boroughStyle(ctx, f); });
    }
    CM.boroughSelector(map, ctx, boroughLayer).addTo(map);
    L.control.scale({metric: true, imperial: false, position: 'bottomleft'}).addTo(map);
    CM.legend(ctx).addTo(map);
    // Handles for people debugging in the console, and for the browser tests.
    window.connectivityMap = {map: map, layers: layers, boroughs: boroughLayer, ctx: ctx};
  };

  window.ConnectivityMap = CM;
}());
