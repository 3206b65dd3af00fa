"""The ``app-config.js`` radai gives the OHIF viewer.

OHIF reads its configuration from ``window.config`` (set by ``app-config.js`` before the
app bundle runs). radai's configuration has one data source, radai's own DICOMweb
service (PS3.18) at ``/dicom-web`` on the same origin, so the browser's radai session
cookie authenticates every request the viewer makes and no token is handed to the
JavaScript. Everything else OHIF can connect to (local files, ``?url=`` sources,
dynamic configuration, customisations loaded from URLs) stays off.
"""

from __future__ import annotations

import json
from typing import Any

from radai.viewer.files import BASE
from radai.viewer.settings import ViewerSettings

#: radai's DICOMweb service, relative to the origin the viewer is served from.
DICOMWEB_ROOT = "/dicom-web"


def viewer_config(settings: ViewerSettings) -> dict[str, Any]:
    """OHIF's ``window.config`` as data (the roots are made absolute in the browser)."""
    return {
        "name": "radai",
        "routerBasename": BASE,
        "extensions": [],
        "modes": [],
        # OHIF's guided tour covers the image on a reader's first visit; radai's own
        # pages say what to do.
        "customizationService": {"global": {"ohif.tours": []}},
        # radai's worklist is the study list; the viewer opens the studies it is given.
        "showStudyList": False,
        # The study page says what the AI results are; OHIF's own notice would cover it.
        "investigationalUseDialog": {"option": "never"},
        "maxNumberOfWebWorkers": settings.max_web_workers,
        "showWarningMessageForCrossOrigin": False,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "groupEnabledModesFirst": True,
        "showErrorDetails": "production",
        "maxNumRequests": {"interaction": 100, "thumbnail": 10, "prefetch": 10},
        "defaultDataSourceName": "radai",
        "dataSources": [{
            "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
            "sourceName": "radai",
            "configuration": {
                "friendlyName": "radai",
                "name": "radai",
                "qidoRoot": DICOMWEB_ROOT,
                "wadoRoot": DICOMWEB_ROOT,
                "wadoUriRoot": DICOMWEB_ROOT,
                "qidoSupportsIncludeField": True,
                # PS3.18 §8.3.4.1: radai refuses fuzzy matching (it answers with a warning).
                "supportsFuzzyMatching": False,
                "supportsWildcard": True,
                "imageRendering": "wadors",
                "thumbnailRendering": "wadors",
                "enableStudyLazyLoad": True,
                "staticWado": False,
                "dicomUploadEnabled": False,
                "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
                "omitQuotationForMultipartRequest": True,
            },
        }],
    }


def app_config_js(settings: ViewerSettings) -> str:
    """The text of ``app-config.js``."""
    config = json.dumps(viewer_config(settings), indent=2)
    return f"""// Written by radai: the OHIF viewer reads radai's DICOMweb service on this origin.
window.config = {config};
(function (source) {{
  ["qidoRoot", "wadoRoot", "wadoUriRoot"].forEach(function (key) {{
    source[key] = window.location.origin + source[key];
  }});
}})(window.config.dataSources[0].configuration);
// A request refused for want of a session (it expired) sends the page to radai's sign-in.
window.config.httpErrorHandler = function (error) {{
  if (error && error.status === 401) {{
    var top = window.top || window;
    top.location.href = "/login?next=" + encodeURIComponent(top.location.pathname + top.location.search);
  }}
}};
"""
