POLYGRAPHY_USE_TENSORRT_RTX=1 polygraphy convert mlp_int8_weights.onnx -o mlp_int8w.plan --trt-min-shapes 'x:[1,64]' --trt-opt-shapes 'x:[16,64]' --trt-max-shapes 'x:[64,64]' --profiling-verbosity detailed --verbosity extra_verbose > mlp_int8w.build.log 2>&1
# kept: whole log
# versions: polygraphy 0.53.6, tensorrt-rtx-cu13 1.7.1.116, onnx 1.23.2, onnxconverter-common 1.16.0
