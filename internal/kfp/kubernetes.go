package kfp

// The images of kfp-kubernetes' PVC components. They never run: the KFP v2
// driver recognises them and creates or deletes the claim itself
// (kubernetesPlatformOps in backend/src/v2/driver), as `pipeline local` does
// with a directory.
const (
	CreatePVCImage = "argostub/createpvc"
	DeletePVCImage = "argostub/deletepvc"
)

// CreatePVC returns kfp-kubernetes' CreatePVC component (kfp.kubernetes.CreatePVC):
// inputs access_modes (LIST), size, and optionally pvc_name or
// pvc_name_suffix (the claim is then named UUID+suffix), storage_class_name,
// volume_name, annotations; output name, the claim's name, which
// [Task.MountPVC] and DeletePVC take.
func CreatePVC() *Component {
	return NewComponent("createpvc", CreatePVCImage).
		InputParam("access_modes", List, false, nil).
		InputParam("annotations", Struct, true, nil).
		InputParam("pvc_name", String, true, nil).
		InputParam("pvc_name_suffix", String, true, nil).
		InputParam("size", String, false, nil).
		InputParam("storage_class_name", String, true, "").
		InputParam("volume_name", String, true, nil).
		OutputParam("name", String)
}

// DeletePVC returns kfp-kubernetes' DeletePVC component: input pvc_name.
func DeletePVC() *Component {
	return NewComponent("deletepvc", DeletePVCImage).InputParam("pvc_name", String, false, nil)
}
