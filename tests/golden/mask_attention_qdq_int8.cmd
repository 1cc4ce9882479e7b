POLYGRAPHY_USE_TENSORRT_RTX=1 polygraphy convert mask_attention_qdq.onnx -o mask_attention_qdq_int8.plan --trt-min-shapes 'x:[1,4,16]' 'mask:[1,4]' --trt-opt-shapes 'x:[2,8,16]' 'mask:[2,8]' --trt-max-shapes 'x:[4,16,16]' 'mask:[4,16]' --profiling-verbosity detailed --verbosity extra_verbose > mask_attention_qdq_int8.build.log 2>&1
# kept: whole log
# versions: polygraphy 0.53.6, tensorrt-rtx-cu13 1.7.1.116, onnx 1.23.2, onnxconverter-common 1.16.0
