POLYGRAPHY_USE_TENSORRT_RTX=1 polygraphy convert attention_gather.onnx -o attention_gather_fp32.plan --trt-min-shapes 'x:[1,4,32]' --trt-opt-shapes 'x:[2,16,32]' --trt-max-shapes 'x:[4,32,32]' --profiling-verbosity detailed --verbosity extra_verbose > attention_gather_fp32.build.log 2>&1
# kept: whole log
# versions: polygraphy 0.53.6, tensorrt-rtx-cu13 1.7.1.116, onnx 1.23.2, onnxconverter-common 1.16.0
