"""Exports to other standards' formats, built from the stored assets.

``ofds``: the Open Fibre Data Standard (0.4) network package and its GeoJSON publication
(the ducts as spans, the assets their ends meet as nodes). Only the public asset properties
(:data:`geo.layers.collections.ASSET_PROPERTIES`) are read, so every caller gets the same file.
"""

from __future__ import annotations

from geo.exports.ofds import Export, InvalidScope, Scope, TooManySpans, export_ofds, output_file, parse_scope

__all__ = ["Export", "InvalidScope", "Scope", "TooManySpans", "export_ofds", "output_file", "parse_scope"]
