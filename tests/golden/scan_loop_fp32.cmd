POLYGRAPHY_USE_TENSORRT_RTX=1 polygraphy convert ../fixtures/scan_loop.onnx -o scan_loop_fp32.plan --profiling-verbosity detailed --verbosity extra_verbose > scan_loop_fp32.build.log 2>&1
# kept: whole log
# versions: polygraphy 0.53.6, tensorrt-rtx-cu13 1.7.1.116, onnx 1.23.2, onnxconverter-common 1.16.0
