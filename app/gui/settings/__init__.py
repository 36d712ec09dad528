"""The Settings window: models (installed, catalog, Hub search, downloads, token), generation
defaults and presets, appearance, and where data lives.

Non-modal, so a download can be watched while chatting. Everything that reads the disk or the
network (library scans, catalog checks, the history store, exports) runs through
run_in_background and comes back on the GUI thread; failures are shown inline on the page, with
what to do next, never in a blocking dialog. Every control has an accessible name.

One module per page or concern; everything is re-exported here, so
`from app.gui.settings import SettingsDialog` (and every other name) keeps working.
"""

from __future__ import annotations

from .appearance_page import (
    THEMES,
    AppearancePage,
    apply_appearance,
    request_color_scheme,
)
from .catalog_page import (
    CATALOG_COLUMNS,
    CatalogRow,
    CatalogSection,
    catalog_rows,
    catalog_status,
    catalog_via,
)
from .data_page import (
    DataPage,
    storage_places,
    write_export,
)
from .dialog import (
    SettingsDialog,
)
from .downloads_page import (
    DownloadDelegate,
    DownloadsSection,
)
from .generation_page import (
    CONTEXT_POLICIES,
    SAVE_DELAY_MS,
    GenerationPage,
    PresetsBox,
    SamplingForm,
)
from .models_page import (
    MODEL_COLUMNS,
    InstalledSection,
    ModelRow,
    ModelsPage,
    model_status,
    open_externally,
    scan_models,
)
from .search_page import (
    SEARCH_COLUMNS,
    SearchRow,
    SearchSection,
    search_rows,
)
from .tables import (
    Column,
    GiB,
    RowTableModel,
    fit_label,
    format_day,
    format_params,
    selected_row,
    table_view,
)
from .token_page import (
    TOKEN_USER_KEY,
    TokenSection,
)
from .widgets import (
    Banner,
    Section,
    double_spin,
    hbox,
    int_spin,
    named,
    push_button,
)

__all__ = [
    "AppearancePage",
    "Banner",
    "CATALOG_COLUMNS",
    "CONTEXT_POLICIES",
    "CatalogRow",
    "CatalogSection",
    "Column",
    "DataPage",
    "DownloadDelegate",
    "DownloadsSection",
    "GenerationPage",
    "GiB",
    "InstalledSection",
    "MODEL_COLUMNS",
    "ModelRow",
    "ModelsPage",
    "PresetsBox",
    "RowTableModel",
    "SAVE_DELAY_MS",
    "SEARCH_COLUMNS",
    "SamplingForm",
    "SearchRow",
    "SearchSection",
    "Section",
    "SettingsDialog",
    "THEMES",
    "TOKEN_USER_KEY",
    "TokenSection",
    "apply_appearance",
    "catalog_rows",
    "catalog_status",
    "catalog_via",
    "double_spin",
    "fit_label",
    "format_day",
    "format_params",
    "hbox",
    "int_spin",
    "model_status",
    "named",
    "open_externally",
    "push_button",
    "request_color_scheme",
    "scan_models",
    "search_rows",
    "selected_row",
    "storage_places",
    "table_view",
    "write_export",
]
