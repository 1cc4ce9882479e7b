POLYGRAPHY_USE_TENSORRT_RTX=1 polygraphy convert ../fixtures/yolo_neck.onnx -o yolo_neck_fp32.plan --trt-min-shapes 'images:[1,3,64,64]' --trt-opt-shapes 'images:[2,3,64,64]' --trt-max-shapes 'images:[4,3,64,64]' --profiling-verbosity detailed --verbosity extra_verbose > yolo_neck_fp32.build.log 2>&1
# kept: whole log
# versions: polygraphy 0.53.6, tensorrt-rtx-cu13 1.7.1.116, onnx 1.23.2, onnxconverter-common 1.16.0
