"""The domain: everything the service knows and does, with no web or command-line code.

Packages depend one way, each only on those below it (import-linter checks it in ``make test``)::

    demo                      the London demo data, loaded through the packages below
    uploads | coverage        asset imports; coverage analysis and reports
    layers                    the collections, OGC API Features queries, vector tiles, map data
    wayleaves | projects      standardised wayleaves; LocalGov Digital Pipeline projects
    assets                    the candidate assets and their history
    access                    keys, roles, principals, the audit trail, personal data
    reference                 boroughs, the asset model, the gazetteer
    db                        connections, migrations, the embedded cluster, binary COPY
    core                      errors, query parsing, settings, jobs and progress, row errors
"""
