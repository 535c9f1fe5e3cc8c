"""catalog_app: the Streamlit UI over the assets2vec Python API (pages land with the catalog)."""
