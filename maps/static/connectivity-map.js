/* The GLA connectivity web map: styles, popups, legend and borough selector.
 *
 * maps/web_map.py builds the page with folium and calls ConnectivityMap.init() once every
 * layer exists. Asset layers are Leaflet.VectorGrid layers over /tiles/{collection}/{z}/{x}/{y}.mvt:
 * raw features (id, kind, subtype, status, borough_code, name, height_m) from the raw-feature
 * zoom, aggregated features below it (points: `count` per cluster; lines: merged, `length_m`).
 *
 * Tiles are public and carry no operator. The "Sign in" control takes an API key, checks it
 * against /me and keeps it in this tab's sessionStorage only (never a cookie, never a URL);
 * popups of layers whose details need a key (wayleaves) then fetch /wayleaves/{id} with it.
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
    var label = spec.id_label || 'Asset';
    return '<div class="cm-popup" data-' + label.toLowerCase() + '-id="' + CM.esc(id) + '"><h4>' +
      CM.esc(title) + '</h4><table>' +
      row('Type', subtype) +
      row('Status', vocab(ctx, 'statuses', p.status)) +
      row('Borough', ctx.boroughNames[p.borough_code] || p.borough_code) +
      row('Height', p.height_m ? CM.number(p.height_m, 1) + ' m' : '') +
      row('Source id', p.source_id) +
      row('Days in status', p.days_in_status !== undefined ? CM.number(p.days_in_status) : '') +
      row('Organisation', p.organisation) +
      '</table>' + DETAIL +
      (id === undefined ? '' : '<p class="cm-id">' + CM.esc(label) + ' ' + CM.esc(id) + '</p>') + '</div>';
  };

  // Where a popup's details go once known (a table of rows, or a hint saying why there are none).
  var DETAIL = '<table class="cm-detail"></table>';

  function setDetail(popup, rows, hint) {
    var html = popup.getContent();
    if (typeof html !== 'string' || html.indexOf(DETAIL) < 0) {
      return;
    }
    // setContent, not the DOM: Leaflet redraws a popup from its content on update.
    popup.setContent(html.replace(DETAIL, '<table class="cm-detail">' + (rows || '') + '</table>' +
      (hint ? '<p class="cm-hint">' + CM.esc(hint) + '</p>' : '')));
  }

  var MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  /* "2026-03-05" as "5 Mar 2026" (parsed by hand: no time zone can shift the day). */
  CM.date = function (iso) {
    var m = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso || '');
    return m ? Number(m[3]) + ' ' + MONTHS[Number(m[2]) - 1] + ' ' + m[1] : '';
  };

  /* The rows a signed-in user sees for a wayleave (GET /wayleaves/{id}). */
  CM.wayleaveRows = function (w) {
    return row('Operator', w.operator) + row('Reference', w.reference) +
      row('Operator reference', w.operator_reference) +
      row('Requested', CM.date(w.requested_on)) + row('Surveyed', CM.date(w.surveyed_on)) +
      row('Terms issued', CM.date(w.terms_issued_on)) + row('Signed', CM.date(w.signed_on)) +
      row('Live', CM.date(w.live_on)) + row('Expires', CM.date(w.expires_on)) +
      row('In status since', CM.date(w.status_since)) +
      row('Due', w.due_on ? CM.date(w.due_on) + (w.overdue ? ' (overdue)' : '') : '');
  };

  // The tiles carry what the map styles and labels by; the rest comes from the layer's detail_url:
  // owner and survey from /assets/{id}; operator, references and key dates from /wayleaves/{id},
  // which needs a key (sent only to this app, as a bearer header).
  function fillDetail(ctx, spec, popup, id, p) {
    if (spec.detail_needs_key && !CM.auth.key) {
      setDetail(popup, '', 'Sign in to see the operator, references and key dates.');
      return;
    }
    var url = ctx.prefix + spec.detail_url.replace('{id}', encodeURIComponent(id));
    var sentKey = CM.auth.key;
    fetch(url, {headers: CM.authHeaders(), cache: 'no-store'})
      .then(function (r) {
        if (r.ok) {
          return r.json();
        }
        if (spec.detail_needs_key) {
          if (r.status === 401 && sentKey === CM.auth.key) {
            CM.signOut(ctx, 'Your key is no longer valid: sign in again.');
            setDetail(popup, '', 'Sign in to see the operator, references and key dates.');
          } else if (r.status === 403) {
            setDetail(popup, '', "Your key may not see this wayleave's operator: admin and borough keys " +
              "see every wayleave, operator keys only their own operator's.");
          } else if (r.status === 404) {
            setDetail(popup, '', 'This wayleave is no longer on record.');
          } else {
            setDetail(popup, '', 'The details could not be loaded (' + r.status + ').');
          }
        }
        return null;
      })
      .then(function (a) {
        if (!a) {
          return;
        }
        if (spec.detail_needs_key) {
          setDetail(popup, CM.wayleaveRows(a));
          return;
        }
        // Asset tiles carry only what the map draws by; the rest of the popup comes from here.
        var rows = (p.source_id === undefined
          ? row('Name', a.name) + row('Borough', ctx.boroughNames[a.borough_code] || a.borough_code) +
            row('Height', a.height_m ? CM.number(a.height_m, 1) + ' m' : '') + row('Source id', a.source_id)
          : '') +
          row('Owner', a.owner) + row('Survey quality', a.survey_quality) + row('Last surveyed', a.last_surveyed);
        setDetail(popup, rows);
      })
      .catch(function () {
        if (spec.detail_needs_key) {
          setDetail(popup, '', 'The details could not be loaded: is the server reachable?');
        }
      });
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

  // Sign-in ----------------------------------------------------------------------------------------
  // The key lives in this tab's sessionStorage only: gone when the tab closes, never sent
  // anywhere but this app's own endpoints.
  var KEY_STORE = 'connectivity.apiKey';
  CM.auth = {key: null, who: null};

  function storage() {
    try {
      return window.sessionStorage;
    } catch (e) {
      return null; // storage switched off: sign-in lasts until the page is left
    }
  }

  CM.authHeaders = function () {
    var headers = {Accept: 'application/json'};
    if (CM.auth.key) {
      headers.Authorization = 'Bearer ' + CM.auth.key;
    }
    return headers;
  };

  /* Who a key is (GET /me): resolves to {role, borough_code, operator, label, key_id}, or
   * rejects with an Error carrying the server's problem detail and `status`. */
  CM.whoIs = function (ctx, key) {
    return fetch(ctx.prefix + '/me', {
      headers: {Accept: 'application/json', Authorization: 'Bearer ' + key}, cache: 'no-store'
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (r.ok) {
          return body;
        }
        var error = new Error(body.detail || 'the server answered ' + r.status);
        error.status = r.status;
        throw error;
      });
    });
  };

  /* "borough Camden", "operator Openreach", "admin". */
  CM.describeCaller = function (ctx, who) {
    if (who.role === 'borough') {
      return 'borough ' + ((ctx.boroughNames || {})[who.borough_code] || who.borough_code);
    }
    if (who.role === 'operator') {
      return who.operator ? 'operator ' + who.operator : 'operator (key bound to no operator)';
    }
    return who.role === 'admin' ? 'admin (GLA)' : String(who.role);
  };

  // An open popup's details were fetched as someone else: it goes when the caller changes.
  function closePopups(ctx) {
    if (ctx.map) {
      ctx.map.closePopup();
    }
  }

  function signedIn(ctx, key, who) {
    closePopups(ctx);
    CM.auth = {key: key, who: who};
    var store = storage();
    if (store) {
      store.setItem(KEY_STORE, key);
    }
    CM.renderSignIn(ctx);
  }

  CM.signOut = function (ctx, message) {
    CM.auth = {key: null, who: null};
    var store = storage();
    if (store) {
      store.removeItem(KEY_STORE);
    }
    CM.renderSignIn(ctx, {error: message});
  };

  CM.signInControl = function (map, ctx) {
    var control = L.control({position: 'topleft'});
    control.onAdd = function () {
      var div = L.DomUtil.create('div', 'cm-signin leaflet-control');
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      ctx.signInDiv = div;
      ctx.map = map;
      CM.renderSignIn(ctx);
      return div;
    };
    return control;
  };

  /* Draw the control in its state: signed in, checking, the form (open) or the button. */
  CM.renderSignIn = function (ctx, state) {
    var div = ctx.signInDiv;
    if (!div) {
      return;
    }
    state = state || {};
    if (CM.auth.key && CM.auth.who) {
      div.innerHTML = '<p class="cm-who" title="' + CM.esc('key ' + CM.auth.who.key_id + ': ' + CM.auth.who.label) +
        '">Signed in as <strong>' + CM.esc(CM.describeCaller(ctx, CM.auth.who)) + '</strong></p>' +
        '<button type="button" class="cm-signout">Sign out</button>';
      L.DomEvent.on(div.querySelector('.cm-signout'), 'click', function () {
        closePopups(ctx);
        CM.signOut(ctx);
      });
      return;
    }
    if (state.checking) {
      div.innerHTML = '<p class="cm-checking" role="status">Checking the key…</p>';
      return;
    }
    var error = state.error ? '<p class="cm-error" role="alert">' + CM.esc(state.error) + '</p>' : '';
    if (!state.open && !state.error) {
      div.innerHTML = '<button type="button" class="cm-open">Sign in</button>';
      L.DomEvent.on(div.querySelector('.cm-open'), 'click', function () {
        CM.renderSignIn(ctx, {open: true});
        div.querySelector('#cm-key').focus();
      });
      return;
    }
    div.innerHTML = '<form class="cm-signin-form" autocomplete="off">' +
      '<label for="cm-key">API key</label>' +
      '<input id="cm-key" name="key" type="password" autocomplete="off" spellcheck="false" ' +
      'placeholder="cx_…" aria-describedby="cm-key-help">' +
      '<button type="submit">Sign in</button> <button type="button" class="cm-cancel">Cancel</button>' +
      error +
      '<p id="cm-key-help" class="cm-note">Shows operators and key dates in wayleave popups. ' +
      'Kept in this tab only, until you sign out or close it.</p></form>';
    var form = div.querySelector('form');
    L.DomEvent.on(div.querySelector('.cm-cancel'), 'click', function () { CM.renderSignIn(ctx); });
    L.DomEvent.on(form, 'submit', function (e) {
      L.DomEvent.preventDefault(e);
      var key = form.querySelector('#cm-key').value.trim();
      if (!key) {
        CM.renderSignIn(ctx, {error: 'Paste your API key first.'});
        return;
      }
      CM.signIn(ctx, key);
    });
  };

  /* Check a key with /me; signed in when it is valid, the server's reason shown when not. */
  CM.signIn = function (ctx, key) {
    CM.renderSignIn(ctx, {checking: true});
    return CM.whoIs(ctx, key).then(function (who) {
      signedIn(ctx, key, who);
    }, function (error) {
      CM.auth = {key: null, who: null};
      var store = storage();
      if (store) {
        store.removeItem(KEY_STORE);
      }
      var reason = error.status === 401 ? error.message : 'The key could not be checked: ' + error.message;
      CM.renderSignIn(ctx, {error: 'Not signed in: ' + reason});
    });
  };

  /* A key kept by this tab (a reload) is checked again before it is used. */
  CM.restoreSignIn = function (ctx) {
    var store = storage();
    var key = store && store.getItem(KEY_STORE);
    if (key) {
      CM.signIn(ctx, key);
    }
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
    CM.signInControl(map, ctx).addTo(map);
    CM.restoreSignIn(ctx);
    L.control.scale({metric: true, imperial: false, position: 'bottomleft'}).addTo(map);
    CM.legend(ctx).addTo(map);
    // Handles for people debugging in the console, and for the browser tests.
    window.connectivityMap = {map: map, layers: layers, boroughs: boroughLayer, ctx: ctx};
  };

  window.ConnectivityMap = CM;
}());
