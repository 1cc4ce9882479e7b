"""Accuracy page: per-layer comparison against ONNX Runtime with Polygraphy."""

import streamlit as st

from workbench import ui

st.title("Accuracy")
ref = ui.require_model()
if ref is not None:
    st.info("Accuracy comparison against ONNX Runtime is not available in this version yet.")
