POLYGRAPHY_USE_TENSORRT_RTX=1 polygraphy convert gpt2_2layer_qdq.onnx -o gpt2_2layer_qdq_int8.plan --trt-min-shapes 'input_ids:[1,1]' 'attention_mask:[1,1]' --trt-opt-shapes 'input_ids:[2,16]' 'attention_mask:[2,16]' --trt-max-shapes 'input_ids:[4,64]' 'attention_mask:[4,64]' --profiling-verbosity detailed --verbosity extra_verbose > gpt2_2layer_qdq_int8.build.log 2>&1
# kept: tail only: from the last 'Engine generation completed' line to the end
# versions: polygraphy 0.53.6, tensorrt-rtx-cu13 1.7.1.116, onnx 1.23.2, onnxconverter-common 1.16.0
