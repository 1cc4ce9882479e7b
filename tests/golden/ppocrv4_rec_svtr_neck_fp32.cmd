POLYGRAPHY_USE_TENSORRT_RTX=1 polygraphy convert ../fixtures/ppocrv4_rec_svtr_neck.onnx -o ppocrv4_rec_svtr_neck_fp32.plan --trt-min-shapes 'p2o.AveragePool.1:[1,480,1,20]' --trt-opt-shapes 'p2o.AveragePool.1:[1,480,1,40]' --trt-max-shapes 'p2o.AveragePool.1:[2,480,1,80]' --profiling-verbosity detailed --verbosity extra_verbose > ppocrv4_rec_svtr_neck_fp32.build.log 2>&1
# kept: whole log
# versions: polygraphy 0.53.6, tensorrt-rtx-cu13 1.7.1.116, onnx 1.23.2, onnxconverter-common 1.16.0
