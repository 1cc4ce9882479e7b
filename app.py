"""TensorRT Workbench — Streamlit entry. Routes to the pages; all logic lives in ``workbench``."""

import streamlit as st

st.set_page_config(page_title="TensorRT Workbench", page_icon="🧮", layout="wide")

pages = [
    st.Page("pages/model.py", title="Model", icon=":material/upload_file:", default=True),
    st.Page("pages/build.py", title="Build", icon=":material/build:"),
    st.Page("pages/quantize.py", title="Quantize", icon=":material/tune:"),
    st.Page("pages/engines.py", title="Engines", icon=":material/inventory_2:"),
    st.Page("pages/fusion.py", title="Fusion", icon=":material/account_tree:"),
    st.Page("pages/accuracy.py", title="Accuracy", icon=":material/troubleshoot:"),
    st.Page("pages/settings.py", title="Settings", icon=":material/settings:"),
]
page = st.navigation(pages)
st.sidebar.caption("**TensorRT Workbench** · ONNX → TensorRT plan")  # the product's name, on every page
page.run()
