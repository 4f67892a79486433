"""The GDAL inside this process (pyogrio's) made fit for files from outside.

GDAL chooses a driver by a file's content, not its name, and some drivers read other files
or URLs named inside the file: a GDAL VRT renamed ``x.geojson`` opens as a VRT that reads
``/etc/passwd`` or fetches ``/vsicurl/http://...``. So :func:`harden`:

- keeps registered only the drivers of the formats uploads accept (:data:`ALLOWED_DRIVERS`)
  and deregisters every other one (VRT, SQLite, CSV, GML, the network drivers, GDALG and the
  raster drivers among them): what is not registered cannot be chosen, whatever a file holds;
- switches GDAL's network access off: ``/vsicurl/`` may fetch no file, HTTP goes to a closed
  local port with a one-second timeout.

pyogrio offers no way to pass GDAL an allowed-driver list per open, so the drivers are
deregistered through GDAL's C API (``GDALDeregisterDriver``) in the library pyogrio loaded.
:func:`harden` is idempotent and cheap (a walk over ~15 registered drivers), so every reader
calls it before it opens a file: anything that registered drivers again meanwhile is undone.
Which driver opened a file is still checked after the open (:func:`geo.uploads.source.read_info`).
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from functools import lru_cache

import pyogrio

from geo.core.errors import Unavailable

#: The GDAL drivers each upload format may be read with (short names).
DRIVERS = {
    "GeoPackage": ("GPKG",),
    "Shapefile": ("ESRI Shapefile",),
    "GeoJSON": ("GeoJSON",),
    "FlatGeobuf": ("FlatGeobuf",),
    "KML": ("LIBKML", "KML"),
    "KMZ": ("LIBKML", "KML"),
    "XLSX": ("XLSX",),
}
#: The only drivers left registered.
ALLOWED_DRIVERS = frozenset(d for drivers in DRIVERS.values() for d in drivers)

#: GDAL configuration that keeps it off the network and away from other files.
CONFIG = {
    # /vsicurl/ fetches only files with these extensions: none exists.
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".connectivity-no-network",
    "GDAL_HTTP_PROXY": "127.0.0.1:9",
    "GDAL_HTTPS_PROXY": "127.0.0.1:9",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
    "GDAL_HTTP_MAX_RETRY": "0",
    # A file is opened by name, with its own side files only: no directory listing.
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    # One GeoJSON feature larger than this (MB) is refused rather than parsed.
    "OGR_GEOJSON_MAX_OBJ_SIZE": "64",
}

_lock = threading.Lock()


class GdalUnavailable(Unavailable):
    """pyogrio's GDAL library cannot be found to harden (nothing is read then)."""


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL:
    base = os.path.dirname(pyogrio.__file__)
    found = sorted(glob.glob(os.path.join(base + ".libs", "libgdal*.so*"))) or sorted(
        glob.glob(os.path.join(base, ".dylibs", "libgdal*"))
    )
    if not found:
        raise GdalUnavailable("pyogrio's GDAL library was not found; uploads cannot be read safely")
    # The same file pyogrio loaded: dlopen returns that library, so its driver manager is ours.
    lib = ctypes.CDLL(found[0])
    lib.GDALGetDriverCount.restype = ctypes.c_int
    lib.GDALGetDriver.restype = ctypes.c_void_p
    lib.GDALGetDriver.argtypes = [ctypes.c_int]
    lib.GDALGetDriverShortName.restype = ctypes.c_char_p
    lib.GDALGetDriverShortName.argtypes = [ctypes.c_void_p]
    lib.GDALDeregisterDriver.argtypes = [ctypes.c_void_p]
    return lib


def registered_drivers() -> list[str]:
    """The short names of the drivers GDAL has registered now."""
    lib = _library()
    return [
        (lib.GDALGetDriverShortName(lib.GDALGetDriver(i)) or b"").decode()
        for i in range(lib.GDALGetDriverCount())
    ]


def harden() -> None:
    """Deregister every driver outside :data:`ALLOWED_DRIVERS` and switch the network off (idempotent)."""
    with _lock:
        pyogrio.set_gdal_config_options(CONFIG)
        lib = _library()
        handles = [lib.GDALGetDriver(i) for i in range(lib.GDALGetDriverCount())]
        for handle in handles:
            name = (lib.GDALGetDriverShortName(handle) or b"").decode()
            if name not in ALLOWED_DRIVERS:
                # Deregistered, not destroyed: a driver object stays valid for anyone holding it.
                lib.GDALDeregisterDriver(handle)
        left = set(registered_drivers()) - ALLOWED_DRIVERS
        if left:
            raise GdalUnavailable(f"GDAL drivers could not be deregistered: {', '.join(sorted(left))}")
