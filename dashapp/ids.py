"""Every component id of the page, in one place (kebab-case, type first).

Layout and callbacks both import from here, so a rename breaks loudly.
"""

# page state
URL = "url-location"                       # read: the address the page was opened with
URL_WRITER = "url-writer-location"         # written: the address that reproduces the view
SELECTION_STORE = "selection-store"        # {"layer": key | None, "layers": [keys]}
ANALYSIS_STORE = "analysis-store"          # {"ref", "variants", "error"}: which result to show
FILTER_STORE = "filter-store"              # {"ops", "roles", "variants", "search", "sqnr_below"}
RESTORED_LAYER_STORE = "restored-layer-store"  # layer named in the URL, for the selection hub

# model picker and job
REF_DROPDOWN = "ref-model-dropdown"
VARIANT_DROPDOWN = "variant-models-dropdown"
MODEL_BADGES = "model-badges-div"
JOB_BOX = "job-progress-box"
JOB_PROGRESS = "job-progress-bar"
JOB_CANCEL = "job-cancel-button"
JOB_STATUS = "job-status-text"
ANALYSIS_ALERT = "analysis-alert-div"
URL_ALERT = "url-alert-div"                # what in the opened link could not be used

# filters
OP_FILTER = "op-filter-dropdown"
ROLE_FILTER = "role-filter-dropdown"
VARIANT_FILTER = "variant-filter-dropdown"
SEARCH_FILTER = "search-filter-input"
SQNR_FILTER = "sqnr-filter-input"
RESET_FILTERS = "reset-filters-button"

# selection bar
SELECTION_INFO = "selection-info-div"
CLEAR_SELECTION = "clear-selection-button"
LAYER_CALLOUT = "layer-callout-div"

# tabs
TABS = "view-tabs"
TAB_OVERVIEW = "overview"
TAB_LAYERS = "layers"
TAB_DISTRIBUTIONS = "distributions"
TAB_IDS = (TAB_OVERVIEW, TAB_LAYERS, TAB_DISTRIBUTIONS)

# overview
SUMMARY_CARDS = "summary-cards-div"
RANGE_CHART = "layer-range-chart"
RANGE_PAGER = "range-pager-div"            # prev / label / next above the range chart (hidden on one page)
RANGE_PREV = "range-prev-button"
RANGE_NEXT = "range-next-button"
RANGE_PAGE_LABEL = "range-page-label"      # "layers 151-300 of 2,000"
RANGE_PAGE_STORE = "range-page-store"      # the range chart's page (int, 0-based)
RANGE_SCROLL_BOX = "range-scroll-box"      # the range chart's scrolling container
RANGE_SCROLL_SINK = "range-scroll-sink"    # output of the clientside "scroll to the selected row"
SQNR_CHART = "layer-sqnr-chart"
NEXT_STEPS = "next-steps-div"

# layers table
LAYER_TABLE = "layer-table"
TABLE_INFO = "table-info-div"

# distributions
DIST_TITLE = "dist-title-div"
LOG_SWITCH = "log-count-switch"
VALUE_HIST = "value-hist-graph"
GRID_LIMITS = "grid-limits-div"
CODE_HIST = "code-hist-graph"
CHANNEL_CHART = "channel-chart-graph"

# exports
EXPORT_CSV = "export-csv-button"
EXPORT_JSON = "export-json-button"
EXPORT_EXCLUDE = "export-exclude-button"
EXCLUDE_THRESHOLD = "exclude-threshold-input"
TABLE_DOWNLOAD = "table-download"
EXCLUDE_DOWNLOAD = "exclude-download"


def next_step_button(key: str) -> dict:
    """Id of the "show" button of one "What to do next" item (pattern-matching)."""
    return {"type": "next-step-button", "index": key}

LAYER_CALLOUT_ALERT = "layer-callout-alert"  # the dbc.Alert inside LAYER_CALLOUT
ANALYSIS_ERROR_ALERT = "analysis-error-alert"  # the dbc.Alert inside ANALYSIS_ALERT
SELECTED_LAYER_TEXT = "selected-layer-text"   # inside SELECTION_INFO
BOX_SELECTION_BADGE = "box-selection-badge"   # inside SELECTION_INFO

# uploads (dashapp/callbacks/uploads.py)
UPLOAD_STORE = "upload-store"                 # session storage: ids of this session's uploads
UPLOAD_REF = "upload-ref-upload"              # dcc.Upload for an FP32 reference
UPLOAD_VARIANT = "upload-variant-upload"      # dcc.Upload for a quantized variant
UPLOAD_ALERT = "upload-alert-div"
UPLOAD_ERROR_ALERT = "upload-error-alert"     # the dbc.Alert inside UPLOAD_ALERT when refused
UPLOAD_OK_ALERT = "upload-ok-alert"           # the dbc.Alert inside UPLOAD_ALERT when kept
