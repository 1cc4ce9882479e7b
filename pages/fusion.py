"""Fusion page: which ONNX nodes became which engine layer."""

import streamlit as st

from workbench import ui

st.title("Layer fusion")
ref = ui.require_model()
if ref is not None:
    st.info("The layer-fusion report is not available in this version yet.")
