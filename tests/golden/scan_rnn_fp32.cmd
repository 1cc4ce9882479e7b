POLYGRAPHY_USE_TENSORRT_RTX=1 polygraphy convert scan_rnn.onnx -o scan_rnn_fp32.plan --trt-min-shapes 'x:[1,5,4]' 's0:[1,4]' --trt-opt-shapes 'x:[2,5,4]' 's0:[2,4]' --trt-max-shapes 'x:[4,5,4]' 's0:[4,4]' --profiling-verbosity detailed --verbosity extra_verbose > scan_rnn_fp32.build.log 2>&1
# kept: whole log
# versions: polygraphy 0.53.6, tensorrt-rtx-cu13 1.7.1.116, onnx 1.23.2, onnxconverter-common 1.16.0
