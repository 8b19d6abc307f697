module gotexttemplate

go 1.19
