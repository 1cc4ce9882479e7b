POLYGRAPHY_USE_TENSORRT_RTX=1 polygraphy convert ../fixtures/neg_dim.onnx -o neg_dim_fp32.plan --trt-min-shapes 'x:[1,3,16,16]' --trt-opt-shapes 'x:[2,3,16,16]' --trt-max-shapes 'x:[4,3,16,16]' --profiling-verbosity detailed --verbosity extra_verbose > neg_dim_fp32.build.log 2>&1
# kept: whole log
# versions: polygraphy 0.53.6, tensorrt-rtx-cu13 1.7.1.116, onnx 1.23.2, onnxconverter-common 1.16.0
